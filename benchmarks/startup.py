"""Benchmark 6, start-up and installed size: ``mouseguard run`` until protected; the runtime's footprint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.child import child_env
from benchmarks.context import ROOT, Context
from benchmarks.report import Report


def _status_state(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("state")
    except (OSError, ValueError):
        return None


def _proc_status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _maps_mention(pid: int, word: str) -> bool:
    try:
        return word in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _smaps_top(pid: int, n: int = 8) -> dict[str, float]:
    """Resident MB per mapped file (anonymous memory as one entry): where an RSS goes."""
    by_path: dict[str, float] = {}
    current = "[anon]"
    try:
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            head = line.split(None, 5)
            if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:
                current = head[5].strip() if len(head) == 6 and head[5].startswith("/") else "[anon]"
                if current.startswith("/"):
                    current = os.path.basename(current)
            elif line.startswith("Rss:"):
                by_path[current] = by_path.get(current, 0.0) + int(line.split()[1]) / 1024
    except OSError:
        return {}
    top = sorted(by_path.items(), key=lambda kv: -kv[1])
    out = {k: round(v, 1) for k, v in top[:n]}
    out["(other mappings)"] = round(sum(v for _, v in top[n:]), 1)
    return out


def bench_startup(ctx: Context, report: Report) -> None:
    from agent.paths import status_file

    x = ctx.x()
    runs = 2 if ctx.quick else 5
    times, rss, anon, torch_loaded = [], [], [], []
    for k in range(runs):
        home = ctx.tmp / f"home{k}"
        env = child_env(DISPLAY=x.display, XDG_SESSION_TYPE="x11", MOUSEGUARD_HOME=str(home))
        env.pop("WAYLAND_DISPLAY", None)
        status = status_file(env)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--no-tray", "--action", "log",
                                 "--model", str(ctx.model_path)], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = t0 + 60
            state = None
            while time.perf_counter() < deadline and proc.poll() is None:
                state = _status_state(status)
                if state == "protected":
                    break
                time.sleep(0.005)
            elapsed = time.perf_counter() - t0
            if state != "protected":
                raise RuntimeError(f"mouseguard run did not reach 'protected' (state {state!r}, exit "
                                   f"{proc.poll()}): {proc.stderr.read()[-1500:] if proc.poll() is not None else ''}")
            times.append(elapsed)
            time.sleep(0.5)  # settled: hook running, heartbeat thread started
            rss.append(_proc_status_mb(proc.pid, "VmRSS"))
            anon.append(_proc_status_mb(proc.pid, "RssAnon"))
            torch_loaded.append(_maps_mention(proc.pid, "libtorch"))
            if k == 0:
                resident = _smaps_top(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    report.add("startup.protected_p50_s", f"start-up: `mouseguard run` to protected, median of {runs}",
               float(np.median(times)), "s")
    report.add("startup.protected_first_s", "start-up: first run (cold caches)", times[0], "s")
    report.add("startup.agent_rss_mb", "running agent RSS while protecting (VmRSS)", float(np.median(rss)), "MB",
               "≤ 80 MB", float(np.median(rss)) <= 80)
    report.add("startup.agent_rss_anon_mb", "… of which private (RssAnon)", float(np.median(anon)), "MB")
    report.add("startup.torch_loaded", "libtorch mapped in the running agent", any(torch_loaded), "bool", "no",
               not any(torch_loaded))
    report.details["startup"] = {"seconds": times, "rss_mb": rss, "rss_anon_mb": anon,
                                 "resident_mb_by_mapping": resident,
                                 "command": "python -m agent run --no-tray --action log --model models/demo/model",
                                 "method": "MOUSEGUARD_HOME in a temp folder, private Xvfb; time from Popen until the "
                                           "status file says state == protected (polled every 5 ms)"}
    bench_footprint(ctx, report)


def _runtime_requirements() -> list[str]:
    import importlib.metadata as md

    try:
        return [r for r in (md.requires("mouseguard") or []) if "extra ==" not in r]
    except md.PackageNotFoundError:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def _tree_bytes(folders) -> int:
    return sum(p.stat().st_size for f in folders for p in Path(f).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts)


def bench_footprint(ctx: Context, report: Report) -> None:
    from benchmarks.footprint import footprint

    result, method, error = None, "", None
    if not ctx.quick and (ROOT / "pyproject.toml").is_file():
        venv = ctx.tmp / "runtime-venv"
        try:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
            py = venv / "bin" / "python"
            done = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
                                  check=False, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise RuntimeError(done.stderr.strip()[-1500:])
            install_s = time.perf_counter() - t0
            probe = subprocess.run([str(py), "-m", "benchmarks.footprint", "mouseguard"], cwd=str(venv),
                                   capture_output=True, text=True, timeout=120, check=True,
                                   env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
            result = json.loads(probe.stdout)
            torch_there = subprocess.run([str(py), "-c",
                                          "import importlib.util as u; print(u.find_spec('torch') is not None)"],
                                         check=False, capture_output=True, text=True, cwd=str(venv)).stdout.strip()
            result.update(install_seconds=install_s, venv_total_bytes=_tree_bytes([venv]), torch_installed=torch_there)
            method = "pip install of the project without extras into a fresh venv; sizes of the installed " \
                     "distributions (mouseguard and its dependency closure, pip/setuptools excluded)"
        except Exception as exc:  # no package index, no venv module: fall back, and say so
            error = f"{type(exc).__name__}: {exc}"
            result = None
    if result is None:
        result = footprint(_runtime_requirements())
        own = _tree_bytes([ROOT / "agent", ROOT / "training", ROOT / "models"])
        result["by_distribution"]["mouseguard (agent, training, models; sources)"] = own
        result["total_bytes"] += own
        method = "no install: files of the runtime dependencies already installed in this interpreter " \
                 "(importlib.metadata, closure of pyproject's runtime dependencies, pip/setuptools excluded) " \
                 "plus the project's own packages"
    mb = result["total_bytes"] / 2**20
    report.add("footprint.runtime_mb", "installed size of the runtime (no [train] extra)", mb, "MB")
    report.details["footprint"] = {**result, "method": method, "install_error": error,
                                   "by_distribution_mb": {k: round(v / 2**20, 2)
                                                          for k, v in result["by_distribution"].items()}}
