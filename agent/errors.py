"""The one base class of the errors a user can cause (bad file, bad flag, bad model).

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps its
traceback.
"""


class MouseguardError(Exception):
    pass
