"""mouseguard's runtime agent: capture, blocks, scoring, decision and action.

Nothing here imports torch; the training package (``training``) does, and is only needed
for enrolment and evaluation.
"""

__version__ = "0.1.0"
