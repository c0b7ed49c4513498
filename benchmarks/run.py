"""``mouseguard bench``: performance and footprint figures, against the goals of issue 7.

One invocation runs every benchmark and writes ``bench.json`` and ``bench.md`` (figure, value,
goal, met?) into ``--out``, and prints the table. Benchmarks report; they never fail on speed.
The exit status is 1 only when a benchmark could not run at all (its figures are then absent).

1. inference   one block and a batch of 64 through the shipped ONNX model (agent.scorer.Scorer)
               and through the same network in torch eager mode (weights copied from the ONNX
               file), beside an identity ONNX model with the same input and session options:
               onnxruntime's own per-call floor. Calls are interleaved in rounds so that load
               from other work hits every contender alike.
2. agent       a child process without torch: a feeder thread plays the hook at 125 events/s
               (real recordings, their timing scaled to that rate), the real PipelineThread cuts,
               scores and decides. CPU time is read per thread, so the feeder (the hook's own
               share, timed in 3) is kept out of the agent's figure.
3. hook        the real pynput listener under a private Xvfb, xdotool input, every MouseHook
               callback timed from the outside (a subclass; the bodies are the shipped ones).
4. long replay eight hours of real input (recordings looped, timestamps shifted) replayed as fast
               as possible in a child process: resident memory per hour, blocks scored against
               an independent count of the blocks the events hold, decisions made.
5. enrolment   training.enrol.enrol from files (~2 000 blocks of Balabit user7), wall time by
               phase.
6. start-up    ``mouseguard run`` under a private Xvfb until its status file says "protected";
               and the installed size of the runtime without the [train] extra.

Quick mode (CI) uses only the shipped demo recordings and shortens everything; the full run
reads Balabit user7 from ``--data``.
"""

from __future__ import annotations

import json
import os
import platform
import time
import traceback
from pathlib import Path

import numpy as np

from benchmarks.agent_overhead import bench_agent
from benchmarks.context import Context, say
from benchmarks.enrolment import bench_enrol
from benchmarks.hook import bench_hook
from benchmarks.inference import bench_inference
from benchmarks.replay import bench_long
from benchmarks.report import Report, load_str
from benchmarks.startup import bench_startup

BENCHMARKS = (
    ("inference", bench_inference),
    ("agent", bench_agent),
    ("hook", bench_hook),
    ("long", bench_long),
    ("enrol", bench_enrol),
    ("startup", bench_startup),
)


def _meta(quick: bool) -> dict:
    import onnxruntime
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "quick": quick, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpu_count": os.cpu_count(), "cpu": cpu,
        "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__, "numpy": np.__version__, "load_start": list(os.getloadavg()),
    }


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(bool(args.quick))
    meta = _meta(bool(args.quick))
    t_start = time.perf_counter()
    ctx = Context(args)
    try:
        for name, fn in BENCHMARKS:
            report.load[name] = list(os.getloadavg())
            say(f"{name} (load {load_str(report.load[name])})")
            t0 = time.perf_counter()
            try:
                fn(ctx, report)
            except Exception as exc:
                report.errors[name] = f"{type(exc).__name__}: {exc}"
                say(f"{name} failed:\n{traceback.format_exc()}")
            say(f"{name} took {time.perf_counter() - t0:.1f} s")
    finally:
        ctx.close()
    meta["load_end"] = list(os.getloadavg())
    meta["seconds"] = time.perf_counter() - t_start
    (out / "bench.json").write_text(json.dumps(report.to_json(meta), indent=2, default=_json_default) + "\n")
    md = report.markdown(meta)
    (out / "bench.md").write_text(md)
    print(md)
    return 1 if report.errors else 0


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON: {type(o).__name__}")
