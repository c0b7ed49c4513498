"""Smoke test of ``mouseguard bench --quick``: the real command, in a subprocess.

It checks that every benchmark ran and wrote its figures (finite numbers) and the markdown
table; it never checks speed: benchmarks report, they do not fail on a slow or busy machine.
Needs Xvfb and xdotool (the hook and start-up benchmarks use a private X server), like the
other X11 tests: missing tools are a failure, not a skip.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.x11


def _mouseguard() -> list[str]:
    """The installed console script when there is one beside this Python, else ``-m agent``
    (the same entry point, cli.main)."""
    script = Path(sys.executable).parent / "mouseguard"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "agent"]


def test_bench_quick_writes_every_figure(tmp_path):
    for tool, package in (("Xvfb", "xvfb"), ("xdotool", "xdotool")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; mouseguard bench needs it (apt-get install {package})",
                        pytrace=False)
    from benchmarks.report import FIGURES

    out = tmp_path / "bench"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    # --data points nowhere: the quick run must need nothing but what the package ships
    done = subprocess.run([*_mouseguard(), "bench", "--quick", "--out", str(out), "--data", str(tmp_path / "none")],
                          check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"bench failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"

    report = json.loads((out / "bench.json").read_text())
    assert report["errors"] == {}
    figures = report["figures"]
    missing = [k for k in FIGURES if k not in figures]
    assert not missing, f"figures missing from bench.json: {missing}"
    bad = {k: f["value"] for k, f in figures.items()
           if not isinstance(f["value"], (int, float)) or not math.isfinite(f["value"])}
    assert not bad, f"figures that are not finite numbers: {bad}"
    assert figures["agent.torch_imported"]["value"] == 0 and figures["startup.torch_loaded"]["value"] == 0
    assert figures["long.blocks_missing"]["value"] == 0
    assert all(len(load) == 3 for load in report["load_average_before"].values())

    table = (out / "bench.md").read_text()
    assert "| figure | value | goal | met? |" in table
    for f in figures.values():
        assert f["label"] in table
    assert "| figure | value | goal | met? |" in done.stdout
