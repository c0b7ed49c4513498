"""``mouseguard bench``: performance and footprint figures (benchmarks.run), one module per benchmark.

Nothing is imported here: benchmarks.agent_process runs in a child that must not import torch,
and benchmarks.footprint runs in a fresh venv with only the runtime installed.
"""
