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

import dataclasses
import gc
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

import models
from agent.blocks import BlockCutter, BlockSpec, cut_blocks
from agent.errors import MouseguardError
from agent.events import EVENT_DTYPE, is_scroll
from agent.recordings import read_recording

ROOT = Path(__file__).resolve().parent.parent
RATE = 125.0  # events per second for the agent-overhead run
LOOP_PAUSE = 5.0  # seconds between looped copies of a recording: longer than any block gap

#: Every figure ``bench.json`` holds after a complete run (the smoke test checks them all).
FIGURES = (
    "inference.ort_p50_us", "inference.ort_p99_us", "inference.ort_batch64_p50_us", "inference.ort_batch64_p99_us",
    "inference.torch_p50_us", "inference.torch_p99_us", "inference.torch_batch64_p50_us",
    "inference.torch_batch64_p99_us", "inference.speedup_vs_torch", "inference.speedup_vs_torch_batch64",
    "inference.floor_p50_us", "inference.floor_batch64_p50_us", "inference.ratio_to_floor",
    "inference.ratio_to_floor_batch64", "inference.ort_batch64_per_block_us",
    "agent.cpu_s_per_min", "agent.pipeline_thread_cpu_s_per_min", "agent.feeder_cpu_s_per_min",
    "agent.peak_rss_mb", "agent.rss_anon_mb", "agent.torch_imported", "agent.events_dropped",
    "hook.callback_p50_us", "hook.callback_p99_us", "hook.move_p50_us", "hook.move_p99_us",
    "hook.listener_cpu_us_per_event", "hook.events_received",
    "long.input_hours", "long.wall_s", "long.rss_start_mb", "long.rss_end_mb", "long.rss_growth_mb",
    "long.blocks_expected", "long.blocks_scored", "long.blocks_missing", "long.decisions",
    "enrol.wall_s", "enrol.cpu_s", "enrol.blocks",
    "startup.protected_p50_s", "startup.protected_first_s", "startup.agent_rss_mb", "startup.agent_rss_anon_mb",
    "startup.torch_loaded",
    "footprint.runtime_mb",
)


def _say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# -- the report --------------------------------------------------------------------------------


@dataclasses.dataclass
class Figure:
    key: str
    label: str
    value: float
    unit: str = ""
    goal: str = ""
    met: bool | None = None

    def formatted(self) -> str:
        v = self.value
        if self.unit == "bool":
            return "yes" if v else "no"
        if not math.isfinite(v):
            return str(v)
        if self.unit == "count":
            return f"{int(v):,}"
        digits = 3 if abs(v) < 10 else 1 if abs(v) < 1000 else 0
        text = f"{v:,.{digits}f}"
        return text + "×" if self.unit == "x" else f"{text} {self.unit}" if self.unit else text


class Report:
    def __init__(self, quick: bool):
        self.figures: dict[str, Figure] = {}
        self.details: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self.load: dict[str, list[float]] = {}
        self.quick = quick

    def add(self, key, label, value, unit="", goal="", met=None) -> None:
        value = float(value)
        self.figures[key] = Figure(key, label, value, unit, goal, None if met is None else bool(met))

    def to_json(self, meta: dict) -> dict:
        return {
            "meta": meta,
            "figures": {k: {"label": f.label, "value": f.value, "unit": f.unit, "goal": f.goal, "met": f.met}
                        for k, f in self.figures.items()},
            "load_average_before": self.load,
            "details": self.details,
            "errors": self.errors,
        }

    def markdown(self, meta: dict) -> str:
        lines = [
            f"# mouseguard bench ({'quick' if self.quick else 'full'} run)",
            "",
            (f"{meta['started']}, {meta['cpu_count']} cores ({meta['cpu']}), Python {meta['python']}, "
             f"onnxruntime {meta['onnxruntime']}, torch {meta['torch']}, numpy {meta['numpy']}.  "),
            (f"Load average (1/5/15 min) at start {_load_str(meta['load_start'])}, at end "
             f"{_load_str(meta['load_end'])}: other work shares these cores, so latencies are upper bounds."),
            "",
            "| figure | value | goal | met? |",
            "|---|---:|---|:---:|",
        ]
        for f in self.figures.values():
            met = "–" if f.met is None else "yes" if f.met else "**no**"
            lines.append(f"| {f.label} | {f.formatted()} | {f.goal or '–'} | {met} |")
        for name, err in self.errors.items():
            lines.append(f"| {name}: did not run | {err.splitlines()[-1] if err else '?'} | | **no** |")
        lines += ["", "Details (methods, per-phase times, profiles) are in bench.json.", ""]
        return "\n".join(lines)


def _load_str(load) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


# -- shared helpers -----------------------------------------------------------------------------


def _child_env(**extra) -> dict:
    """The environment of a benchmark child: this checkout (or installed package) importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def _run_child(mode: str, params: dict, timeout: float, env: dict | None = None) -> tuple[dict, dict]:
    """Run ``training.bench_agent_process MODE``; return its JSON and its whole rusage."""
    before = _children_rusage()
    done = subprocess.run([sys.executable, "-m", "training.bench_agent_process", mode, json.dumps(params)],
                          check=False, env=env or _child_env(), capture_output=True, text=True, timeout=timeout)
    after = _children_rusage()
    lines = done.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise RuntimeError(f"agent child ({mode}) failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    result = json.loads(lines[-1])
    result["child_exit_code"] = done.returncode
    if done.returncode != 0:
        result["child_stderr"] = done.stderr.strip()[-2000:]
    return result, {"cpu_s": after[0] - before[0], "maxrss_mb": after[1]}


def _children_rusage() -> tuple[float, float]:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024


def loop_recordings(recordings: list[np.ndarray], seconds: float) -> np.ndarray:
    """Real recordings back to back (looped as needed) until ``seconds`` of input, timestamps
    shifted so each copy starts LOOP_PAUSE after the last ended; cut at exactly ``seconds``."""
    recordings = [r for r in recordings if len(r) >= 2]
    if not recordings:
        raise MouseguardError("no recording with events to build benchmark input from")
    parts, t_next, i = [], 0.0, 0
    while t_next < seconds:
        r = recordings[i % len(recordings)]
        part = r.copy()
        part["t"] = part["t"] - part["t"][0] + t_next
        parts.append(part)
        t_next = float(part["t"][-1]) + LOOP_PAUSE
        i += 1
    events = np.concatenate(parts)
    return events[events["t"] - events["t"][0] <= seconds]


def paced_feed(recordings: list[np.ndarray], rate: float, seconds: float, gap: float) -> np.ndarray:
    """``rate * seconds`` real events with their recorded rhythm scaled to ``rate`` events/s.

    Idle pauses longer than the block gap are shortened to it first (an idle user costs the
    agent nothing, and 125 events/s is a hand that keeps moving); then all intervals are
    scaled by one factor so the events span exactly ``seconds``. Bursts (zero intervals) stay.
    """
    n = round(rate * seconds)
    events = np.zeros(0, EVENT_DTYPE)
    span = 0.0
    while len(events) < n:
        span = span * 2 + 3600.0
        events = loop_recordings(recordings, span)
    events = events[:n]
    intervals = np.clip(np.diff(events["t"]), 0.0, gap)
    offsets = np.concatenate(([0.0], np.cumsum(intervals)))
    offsets *= (n - 1) / rate / offsets[-1]
    feed = np.zeros(n, dtype=[("offset", "<f8"), ("button", "u1"), ("state", "u1"), ("x", "<i4"), ("y", "<i4")])
    feed["offset"] = offsets
    for name in ("button", "state", "x", "y"):
        feed[name] = events[name]
    return feed


def independent_block_count(events: np.ndarray, spec: BlockSpec) -> int:
    """Blocks the events hold, counted without the cutter: wheel events out, sequences split
    where the clock runs back (and, if pauses split, jumps by more than the gap), each
    sequence of m events giving m - 1 samples; with "concatenate", the remainders of every
    sequence that has ended (not the last: a live stream never flushes) fill further blocks."""
    t = events["t"][~is_scroll(events)]
    if len(t) < 2:
        return 0
    dt = np.diff(t)
    breaks = np.flatnonzero((dt < 0) | ((dt > spec.gap) & (spec.pauses == "split")))
    # pair i links events i and i+1; a breaking pair gives no sample
    bounds = np.concatenate(([-1], breaks, [len(dt)]))
    samples = np.diff(bounds) - 1
    full = int((samples // spec.size).sum())
    if spec.remainder == "concatenate":
        full += int((samples[:-1] % spec.size).sum()) // spec.size
    return full


def _percentiles_us(ns: list[int]) -> tuple[float, float]:
    a = np.asarray(ns, dtype=np.float64) / 1000.0
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def time_interleaved(cases: dict, rounds: int, warmup: int) -> dict[str, list[int]]:
    """Time every call of every case; cases take turns in ``rounds`` so load spikes spread evenly.

    ``cases``: name -> (callable, calls in total). Garbage collection is off while timing.
    """
    perf = time.perf_counter_ns
    for fn, _ in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[int]] = {name: [] for name in cases}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, (fn, calls) in cases.items():
                out = samples[name]
                for _ in range(max(1, calls // rounds)):
                    t0 = perf()
                    fn()
                    out.append(perf() - t0)
    finally:
        if gc_was:
            gc.enable()
    return samples


class Context:
    def __init__(self, args):
        self.quick = bool(args.quick)
        self.data = Path(args.data) if args.data else None
        self.tmp = Path(tempfile.mkdtemp(prefix="mouseguard-bench-"))
        self.model_path = models.DEMO_MODEL
        from agent.model_dir import load_model_dir

        self.model = load_model_dir(self.model_path)
        self.spec = self.model.spec
        self._recordings = None
        self.xserver = None

    def balabit_user7(self) -> list[tuple[str, np.ndarray]]:
        folder = self.data / "balabit-training" / "user7" if self.data else None
        if folder is None or not folder.is_dir():
            raise MouseguardError(f"no Balabit user7 sessions under {self.data}/balabit-training/user7 "
                                  f"(the full run needs --data; use --quick without it)")
        return [(str(p), read_recording(p)) for p in sorted(folder.iterdir()) if p.is_file()]

    def recordings(self) -> list[np.ndarray]:
        """Real input for the agent benchmarks: shipped demo recordings (quick) or Balabit user7."""
        if self._recordings is None:
            if self.quick:
                self._recordings = [read_recording(models.DEMO_GENUINE), read_recording(models.DEMO_IMPOSTOR)]
            else:
                self._recordings = [ev for _, ev in self.balabit_user7()]
        return self._recordings

    def x(self):
        """One private Xvfb for the hook and start-up benchmarks."""
        if self.xserver is None:
            self.xserver = _xserver_class()().start()
        return self.xserver

    def close(self) -> None:
        if self.xserver is not None:
            self.xserver.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _xserver_class():
    """tests/xserver.py's XServer (Xvfb + xdotool), from the checkout this package runs from."""
    try:
        from tests.xserver import XServer
    except ImportError:
        if not (ROOT / "tests" / "xserver.py").is_file():
            raise MouseguardError("the hook and start-up benchmarks need tests/xserver.py from the source "
                                  "checkout (run mouseguard bench from the repository)") from None
        sys.path.insert(0, str(ROOT))
        from tests.xserver import XServer
    return XServer


# -- 1. block inference -------------------------------------------------------------------------


def torch_twin(onnx_path: Path, channels: int):
    """The shipped network in torch eager mode: BlockClassifier with the ONNX file's weights."""
    import onnx
    import torch
    from onnx import numpy_helper

    from training.cnn import BlockClassifier, GenuineProbability

    net = GenuineProbability(BlockClassifier(channels)).eval()
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(onnx_path)).graph.initializer}
    state = {k: torch.from_numpy(weights[k].copy()) for k in net.state_dict()}
    net.load_state_dict(state)
    return net


def identity_model(channels: int, size: int) -> bytes:
    """Input (n, channels, size) -> the same tensor: what one onnxruntime call costs by itself."""
    import onnx
    from onnx import TensorProto, helper

    shape = ["n", channels, size]
    graph = helper.make_graph([helper.make_node("Identity", ["blocks"], ["same"])], "identity",
                              [helper.make_tensor_value_info("blocks", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("same", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def ort_profile(onnx_path: Path, options, block: np.ndarray, input_name: str, folder: Path, calls: int) -> dict:
    """onnxruntime's own profiler on single-block calls: where a call's time goes, per operator."""
    import onnxruntime as ort

    options.enable_profiling = True
    options.profile_file_prefix = str(folder / "ort-profile")
    session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    for _ in range(calls):
        session.run(None, {input_name: block})
    trace = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, float] = {}
    runs = []
    for ev in trace:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            op = ev.get("args", {}).get("op_name", "?")
            by_op[op] = by_op.get(op, 0.0) + ev["dur"]
        elif ev.get("cat") == "Session" and ev.get("name") == "model_run":
            runs.append(ev["dur"])
    kernels = sum(by_op.values())
    per_run = float(np.median(runs)) if runs else float("nan")
    return {
        "calls": calls,
        "model_run_median_us": per_run,
        "kernels_us_per_call": kernels / max(calls, 1),
        "kernel_share_by_op": {k: round(v / kernels, 3) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "note": "model_run is onnxruntime's time inside InferenceSession.run; the rest of a call's "
                "latency is Python binding and input/output conversion",
    }


def bench_inference(ctx: Context, report: Report) -> None:
    import onnxruntime as ort
    import torch

    from agent.scorer import Scorer

    torch.set_num_threads(1)
    scorer = Scorer(ctx.model)
    spec = ctx.spec
    blocks, _ = cut_blocks(read_recording(models.DEMO_GENUINE), spec)
    if len(blocks) < 64:
        blocks = np.resize(blocks, (64, spec.channels, spec.size))
    batch = np.ascontiguousarray(blocks[:64], dtype=np.float32)
    singles = [np.ascontiguousarray(batch[i:i + 1]) for i in range(64)]

    net = torch_twin(ctx.model.onnx_path, spec.channels)
    with torch.inference_mode():
        parity = float(np.max(np.abs(net(torch.from_numpy(batch)).numpy() - scorer.score(batch))))
    identity = ort.InferenceSession(identity_model(spec.channels, spec.size),
                                    sess_options=scorer.session.get_session_options(),
                                    providers=["CPUExecutionProvider"])

    def cycler():
        i = [0]

        def nxt():
            i[0] = (i[0] + 1) & 63
            return singles[i[0]]
        return nxt

    s_next, t_next, r_next, i_next = cycler(), cycler(), cycler(), cycler()
    session, out_name, in_name = scorer.session, [ctx.model.output_name], ctx.model.input_name

    def torch_call(x):
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()

    n1, n64 = (600, 120) if ctx.quick else (6000, 1000)
    cases = {
        "ort": (lambda: scorer.score(s_next()), n1),
        "ort_raw": (lambda: session.run(out_name, {in_name: r_next()}), n1),
        "torch": (lambda: torch_call(t_next()), n1),
        "floor": (lambda: identity.run(["same"], {"blocks": i_next()}), n1),
        "ort64": (lambda: scorer.score(batch), n64),
        "torch64": (lambda: torch_call(batch), n64),
        "floor64": (lambda: identity.run(["same"], {"blocks": batch}), n64),
    }
    samples = time_interleaved(cases, rounds=20, warmup=50 if ctx.quick else 200)
    p = {k: _percentiles_us(v) for k, v in samples.items()}
    profile = ort_profile(ctx.model.onnx_path, scorer.session.get_session_options(), singles[0], in_name,
                          ctx.tmp, 200 if ctx.quick else 2000)

    report.add("inference.ort_p50_us", "ONNX (Scorer.score), 1 block: p50", p["ort"][0], "µs")
    report.add("inference.ort_p99_us", "ONNX (Scorer.score), 1 block: p99", p["ort"][1], "µs")
    report.add("inference.ort_batch64_p50_us", "ONNX (Scorer.score), 64 blocks: p50", p["ort64"][0], "µs")
    report.add("inference.ort_batch64_p99_us", "ONNX (Scorer.score), 64 blocks: p99", p["ort64"][1], "µs")
    report.add("inference.torch_p50_us", "torch eager, 1 block: p50", p["torch"][0], "µs")
    report.add("inference.torch_p99_us", "torch eager, 1 block: p99", p["torch"][1], "µs")
    report.add("inference.torch_batch64_p50_us", "torch eager, 64 blocks: p50", p["torch64"][0], "µs")
    report.add("inference.torch_batch64_p99_us", "torch eager, 64 blocks: p99", p["torch64"][1], "µs")
    sp1, sp64 = p["torch"][0] / p["ort"][0], p["torch64"][0] / p["ort64"][0]
    report.add("inference.speedup_vs_torch", "ONNX vs torch eager, 1 block (p50 ratio)", sp1, "x", "≥ 4×", sp1 >= 4)
    report.add("inference.speedup_vs_torch_batch64", "ONNX vs torch eager, 64 blocks (p50 ratio)", sp64, "x",
               "≥ 4×", sp64 >= 4)
    report.add("inference.floor_p50_us", "onnxruntime floor (identity model), 1 block: p50", p["floor"][0], "µs")
    report.add("inference.floor_batch64_p50_us", "onnxruntime floor (identity model), 64 blocks: p50",
               p["floor64"][0], "µs")
    f1, f64 = p["ort"][0] / p["floor"][0], p["ort64"][0] / p["floor64"][0]
    report.add("inference.ratio_to_floor", "ONNX p50 / floor p50, 1 block", f1, "x", "≤ 1.5×", f1 <= 1.5)
    report.add("inference.ratio_to_floor_batch64", "ONNX p50 / floor p50, 64 blocks (information: the floor "
               "only copies 64 blocks)", f64, "x")
    report.add("inference.ort_batch64_per_block_us", "ONNX, 64 blocks: p50 per block", p["ort64"][0] / 64, "µs")
    report.details["inference"] = {
        "percentiles_us": {k: {"p50": v[0], "p99": v[1], "calls": len(samples[k])} for k, v in p.items()},
        "ort_raw_session_run_p50_us": p["ort_raw"][0],
        "scorer_wrapper_overhead_us": p["ort"][0] - p["ort_raw"][0],
        "torch_vs_onnx_max_abs_diff": parity,
        "torch_threads": torch.get_num_threads(),
        "session_options": {"intra_op_num_threads": 1, "inter_op_num_threads": 1, "execution_mode": "sequential"},
        "blocks": "real blocks of the shipped demo genuine recording, cycled",
        "torch_model": "training.cnn.BlockClassifier + GenuineProbability, weights copied from model.onnx "
                       "(onnx.numpy_helper), eval(), inference_mode, 1 thread",
        "ort_profile_1_block": profile,
    }


# -- 2. agent overhead --------------------------------------------------------------------------


def bench_agent(ctx: Context, report: Report) -> None:
    seconds = 10.0 if ctx.quick else 60.0
    feed = paced_feed(ctx.recordings(), RATE, seconds, ctx.spec.gap)
    path = ctx.tmp / "paced.npy"
    np.save(path, feed)
    params = {"model": str(ctx.model_path), "events": str(path), "status": str(ctx.tmp / "status.json")}
    r, whole = _run_child("overhead", params, timeout=seconds + 120)
    minutes = r["input_seconds"] / 60.0
    per_min = r["agent_cpu_s"] / minutes
    report.add("agent.cpu_s_per_min", "agent CPU per minute of input at 125 events/s (feeder excluded)",
               per_min, "s", "≤ 0.6 s (1 % of a core)", per_min <= 0.6)
    report.add("agent.pipeline_thread_cpu_s_per_min", "… of which the pipeline thread",
               r["pipeline_cpu_s"] / minutes, "s")
    report.add("agent.feeder_cpu_s_per_min", "feeder thread (plays the hook: RingBuffer.put), per minute",
               r["feeder_cpu_s"] / minutes, "s")
    report.add("agent.peak_rss_mb", "agent process peak RSS (VmHWM)", r["peak_rss_mb"], "MB", "≤ 80 MB",
               r["peak_rss_mb"] <= 80)
    report.add("agent.rss_anon_mb", "… of which private (RssAnon at the end; the rest is shared library pages)",
               r["rss_end_anon_mb"], "MB")
    report.add("agent.torch_imported", "torch imported by the agent process", r["torch_imported"], "bool",
               "no", not r["torch_imported"])
    report.add("agent.events_dropped", "events dropped by the ring buffer", r["buffer_dropped"], "count", "0",
               r["buffer_dropped"] == 0)
    details = {**r, "whole_child_cpu_s_including_startup": whole["cpu_s"],
               "rss_method": "VmHWM/RssAnon from /proc/self/status: ru_maxrss is inherited across fork+exec "
                             "on Linux, so the child would report the torch-laden benchmark's peak",
               "method": "child process (python -m training.bench_agent_process overhead); agent CPU = "
                         "getrusage(RUSAGE_SELF) delta over the run minus the feeder thread's own CPU "
                         "clock (time.thread_time); pipeline thread read the same way; the status file is "
                         "rewritten per verdict batch as Agent.on_verdicts does",
               "input": f"{len(feed)} real events ({'demo recordings' if ctx.quick else 'Balabit user7'}), "
                        f"pauses > {ctx.spec.gap:g} s shortened to it, rhythm scaled to {RATE:g} events/s"}
    if not ctx.quick:
        short = ctx.tmp / "paced-10s.npy"
        np.save(short, feed[feed["offset"] < 10.0])
        # Where the shipped loop's time goes (cProfile inflates it; shares are what matter).
        prof, _ = _run_child("overhead", {**params, "profile": True, "events": str(short)}, timeout=200)
        details["profile_shipped_loop_10s"] = {"cpu_s_per_min_under_cprofile": prof["agent_cpu_s"] / (prof["input_seconds"] / 60),
                                               "feeds": prof["feeds"], "events_per_feed": prof["events_per_feed"],
                                               "top_own_time": prof["profile_top"]}
    report.details["agent"] = details


# -- 3. hook cost --------------------------------------------------------------------------------


def bench_hook(ctx: Context, report: Report) -> None:
    x = ctx.x()
    env = _child_env(DISPLAY=x.display, XDG_SESSION_TYPE="x11")
    env.pop("WAYLAND_DISPLAY", None)
    moves = 1000 if ctx.quick else 4000
    clicks = 10 if ctx.quick else 40
    proc = subprocess.Popen([sys.executable, "-m", "training.bench_agent_process", "hook", "{}"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"hook child did not start: {line!r} {proc.stderr.read()[-2000:]}")
        x.xdotool("mousemove", "640", "400")
        steps = [(7, 4), (-6, -5), (5, -3), (-6, 4)]  # stays near the centre, never a zero move
        args: list[str] = []
        for i in range(moves):
            dx, dy = steps[i % len(steps)]
            args += ["mousemove_relative", "--", str(dx), str(dy)]
        t0 = time.perf_counter()
        for start in range(0, len(args), 2000):
            x.xdotool(*args[start:start + 2000])
        for _ in range(clicks):
            x.xdotool("click", "1", "click", "4", "click", "5")
        drive_s = time.perf_counter() - t0
        out, _ = proc.communicate("done\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = json.loads(out.strip().splitlines()[-1])
    sent = moves + clicks * 2 + clicks * 2  # a click is a press and a release; wheel clicks give 2 scroll events
    received = sum(r["events"].values())
    report.add("hook.callback_p50_us", "hook callback time (all callbacks): p50", r["all_p50_us"], "µs")
    report.add("hook.callback_p99_us", "hook callback time (all callbacks): p99", r["all_p99_us"], "µs")
    report.add("hook.move_p50_us", "on_move time: p50", r["callback_us"]["move"]["p50"], "µs")
    report.add("hook.move_p99_us", "on_move time: p99", r["callback_us"]["move"]["p99"], "µs")
    report.add("hook.listener_cpu_us_per_event", "pynput listener thread CPU per event (pynput + Xlib + callback)",
               r["listener_cpu_us_per_event"], "µs")
    report.add("hook.events_received", "hook events received (of xdotool input)", received, "count",
               f"{sent} sent", received >= moves)
    report.details["hook"] = {**r, "xdotool_moves": moves, "xdotool_clicks": clicks, "xdotool_wheel_clicks": 2 * clicks,
                              "events_sent_approx": sent, "drive_seconds": drive_s,
                              "method": "agent.capture.MouseHook subclass wrapping on_move/on_click/on_scroll with "
                                        "perf_counter_ns, real pynput listener on a private Xvfb, input by xdotool "
                                        "(XTest); child process without torch"}


# -- 4. long replay ------------------------------------------------------------------------------


def bench_long(ctx: Context, report: Report) -> None:
    seconds = 600.0 if ctx.quick else 8 * 3600.0
    events = loop_recordings(ctx.recordings(), seconds)
    path = ctx.tmp / "long.npy"
    np.save(path, events)
    expected = independent_block_count(events, ctx.spec)
    # the streaming cutter without the final flush: a live stream never ends its last sequence
    by_cutter = len(BlockCutter(ctx.spec).push(events)[0])
    slice_s = 60.0 if ctx.quick else 3600.0
    r, _ = _run_child("long", {"model": str(ctx.model_path), "events": str(path), "slice_seconds": slice_s},
                      timeout=900)
    rss = r["rss_mb_per_slice"]
    # growth from the end of the first slice (caches warm, first blocks scored) to the end
    growth = rss[-1] - rss[1] if len(rss) > 1 else 0.0
    missing = expected - r["blocks_scored"]
    report.add("long.input_hours", "long replay: hours of input (recording timeline)", seconds / 3600, "h")
    report.add("long.wall_s", "long replay: wall time (as fast as possible)", r["wall_seconds"], "s")
    report.add("long.rss_start_mb", "long replay: RSS at start (model loaded)", rss[0], "MB")
    report.add("long.rss_end_mb", "long replay: RSS at end", rss[-1], "MB")
    report.add("long.rss_growth_mb", "long replay: RSS growth after the first slice", growth, "MB", "≤ 1 MB (none)",
               growth <= 1.0)
    report.add("long.blocks_expected", "long replay: blocks the input holds (independent count)", expected, "count",
               f"= the streaming cutter ({by_cutter})", expected == by_cutter)
    report.add("long.blocks_scored", "long replay: blocks scored", r["blocks_scored"], "count")
    report.add("long.blocks_missing", "long replay: blocks missing (expected − scored)", missing, "count", "0",
               missing == 0)
    report.add("long.decisions", "long replay: decisions made", r["decisions"], "count", "= blocks scored",
               r["decisions"] == r["blocks_scored"])
    report.details["long"] = {**r, "event_span_hours": r["input_hours"], "blocks_by_cut_blocks": by_cutter, "slice_seconds": slice_s,
                              "events_per_second_replayed": r["events"] / max(r["wall_seconds"], 1e-9),
                              "input": f"{'demo recordings' if ctx.quick else 'Balabit user7 sessions'} looped, "
                                       f"timestamps shifted, {LOOP_PAUSE:g} s between copies"}


# -- 5. enrolment --------------------------------------------------------------------------------


ENROL_PHASES = ("fit_user", "predict", "predict_logits", "platt", "calibrate", "export_model_dir")


def bench_enrol(ctx: Context, report: Report) -> None:
    from training import personal
    from training.enrol import enrol
    from training.fit import FitConfig

    phases: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t0
        return wrapper

    t0, c0 = time.perf_counter(), time.process_time()
    if ctx.quick:
        # a few hundred blocks: the demo genuine recording four times over (timing only)
        demo = read_recording(models.DEMO_GENUINE)
        recordings = [demo.copy() for _ in range(4)]
        files, cfg = [str(models.DEMO_GENUINE)] * 4, FitConfig(epochs=1)
    else:
        files, recordings, n = [], [], 0
        for path, events in ctx.balabit_user7():
            files.append(path)
            recordings.append(events)
            n += len(cut_blocks(events, ctx.spec)[0])
            if n >= 2000:
                break
        cfg = FitConfig()
    read_s, read_cpu = time.perf_counter() - t0, time.process_time() - c0
    # Phase times: the steps train_personal_model calls, wrapped where it looks them up
    # (whichever of them the module has: it evolves, the benchmark must not break on that).
    originals = {name: getattr(personal, name) for name in ENROL_PHASES if callable(getattr(personal, name, None))}
    try:
        for name, fn in originals.items():
            setattr(personal, name, timed(name, fn))
        t1, c1 = time.perf_counter(), time.process_time()
        summary = enrol(recordings, "bench", ctx.tmp / "enrolled", cfg=cfg, sources=files)
        enrol_s, enrol_cpu = time.perf_counter() - t1, time.process_time() - c1
    finally:
        for name, fn in originals.items():
            setattr(personal, name, fn)
    wall = read_s + enrol_s
    goal_met = None if ctx.quick else wall <= 30
    report.add("enrol.wall_s", "enrolment from files, wall time" + (" (quick: small, 1 epoch)" if ctx.quick else ""),
               wall, "s", "≤ 30 s" + (" (full run only)" if ctx.quick else ""), goal_met)
    report.add("enrol.cpu_s", "enrolment CPU time (wall time on an idle machine: torch uses 1 thread)",
               read_cpu + enrol_cpu, "s", "≤ 30 s" + (" (full run only)" if ctx.quick else ""),
               None if ctx.quick else read_cpu + enrol_cpu <= 30)
    report.add("enrol.blocks", "enrolment: own blocks", summary["blocks"], "count", "≈ 2 000" if not ctx.quick else "")
    phases = {k: round(v, 3) for k, v in phases.items()}
    report.details["enrol"] = {
        "read_files_s": read_s, "enrol_s": enrol_s, "read_cpu_s": read_cpu, "enrol_cpu_s": enrol_cpu,
        "epochs": cfg.epochs, "files": files,
        "phases_s": phases,
        "other_s (load encoder+pool, cut blocks, metrics)": enrol_s - sum(phases.values()),
        "torch_threads": int(os.environ.get("MOUSEGUARD_TORCH_THREADS", "1")),
        "window": summary["window"], "threshold": summary["threshold"],
        "heldout_auc": summary["metrics"]["heldout_block"]["auc"],
    }


# -- 6. start-up and installed size ---------------------------------------------------------------


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
        env = _child_env(DISPLAY=x.display, XDG_SESSION_TYPE="x11", MOUSEGUARD_HOME=str(home))
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
    from training.bench_footprint import footprint

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
            probe = subprocess.run([str(py), "-m", "training.bench_footprint", "mouseguard"], cwd=str(venv),
                                   capture_output=True, text=True, timeout=120, check=True,
                                   env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
            result = json.loads(probe.stdout)
            torch_there = subprocess.run([str(py), "-c", "import importlib.util as u; print(u.find_spec('torch') is not None)"],
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


# -- the command ---------------------------------------------------------------------------------

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
            _say(f"{name} (load {_load_str(report.load[name])})")
            t0 = time.perf_counter()
            try:
                fn(ctx, report)
            except Exception as exc:
                report.errors[name] = f"{type(exc).__name__}: {exc}"
                _say(f"{name} failed:\n{traceback.format_exc()}")
            _say(f"{name} took {time.perf_counter() - t0:.1f} s")
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
