"""Running the agent side of a benchmark (benchmarks.agent_process) in a child process without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks.context import ROOT


def child_env(**extra) -> dict:
    """The environment of a benchmark child: this checkout (or installed package) importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def run_agent_child(mode: str, params: dict, timeout: float, env: dict | None = None) -> tuple[dict, dict]:
    """Run ``benchmarks.agent_process MODE``; return its JSON and its whole rusage."""
    before = children_rusage()
    done = subprocess.run([sys.executable, "-m", "benchmarks.agent_process", mode, json.dumps(params)],
                          check=False, env=env or child_env(), capture_output=True, text=True, timeout=timeout)
    after = children_rusage()
    lines = done.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise RuntimeError(f"agent child ({mode}) failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    result = json.loads(lines[-1])
    result["child_exit_code"] = done.returncode
    if done.returncode != 0:
        result["child_stderr"] = done.stderr.strip()[-2000:]
    return result, {"cpu_s": after[0] - before[0], "maxrss_mb": after[1]}


def children_rusage() -> tuple[float, float]:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024
