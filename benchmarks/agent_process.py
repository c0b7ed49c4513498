"""The agent side of ``mouseguard bench`` (benchmarks.run): run in a child process, never with torch.

The benchmark's own process has torch loaded (``mouseguard bench`` needs it for the eager
comparison and the enrolment), so what the agent costs is measured here, in a fresh Python
that imports only what ``mouseguard run`` imports. Each mode prints one JSON object as its
last line of stdout:

``overhead``  a feeder thread plays the hook: it ``put``s prepared events into a
              :class:`~agent.ringbuffer.RingBuffer` at their paced times while a real
              :class:`~agent.pipeline.PipelineThread` cuts, scores and decides. CPU time is
              read per thread, so the feeder (the hook's share) is kept apart.
``long``      a long recording replayed as fast as possible through the same pipeline, in
              slices, with the resident set size after each slice.
``hook``      a real pynput listener (``agent.capture.MouseHook`` with timed callbacks) on the
              X display in ``DISPLAY``; the parent drives xdotool and then writes a line to
              stdin to end the measurement.

Usage: ``python -m benchmarks.agent_process MODE JSON-PARAMETERS``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time

import numpy as np


def _rss_mb() -> float:
    """Resident set size now (not the peak), in MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmHWM, RssAnon, ...), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives exec, so a child forked
    # from the benchmark (torch loaded, ~400 MB) reports the parent's peak, not its own.
    return _status_mb("VmHWM")


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load_scorer(model_path: str):
    from agent.model_dir import load_model_dir
    from agent.pipeline import make_pipeline
    from agent.scorer import Scorer

    model = load_model_dir(model_path)
    scorer = Scorer(model)
    warm = np.zeros((1, model.spec.channels, model.spec.size), np.float32)
    for _ in range(20):  # warm up once, as the agent's first block would
        scorer.score(warm)
    return model, make_pipeline(model, scorer)


def overhead(p: dict) -> dict:
    from agent.pipeline import PipelineThread
    from agent.ringbuffer import RingBuffer
    from agent.status import write_status

    rss_start = _rss_mb()
    _model, pipeline = _load_scorer(p["model"])
    rss_loaded = _rss_mb()
    feed = np.load(p["events"])
    offsets = feed["offset"].tolist()
    rows = list(zip(feed["button"].tolist(), feed["state"].tolist(), feed["x"].tolist(), feed["y"].tolist()))
    buffer = RingBuffer()
    verdicts = {"blocks": 0, "locks": 0, "batches": 0, "errors": 0}
    status_path = p.get("status")

    def on_verdicts(batch):
        # What Agent.on_verdicts does per batch: note the verdicts, rewrite the status file.
        verdicts["batches"] += 1
        verdicts["blocks"] += len(batch)
        verdicts["locks"] += sum(v.verdict.act for v in batch)
        if status_path:
            last = batch[-1]
            write_status(status_path, last.verdict.state, time.time(), last.index, last.verdict.rolling,
                         pid=os.getpid())

    def on_error(exc):
        verdicts["errors"] += 1
        print(f"pipeline error: {exc!r}", file=sys.stderr)

    thread_cpu = {}
    feeds = {"calls": 0, "events": 0}
    shipped_feed = pipeline.feed

    def counting_feed(events):
        # How many events each wake-up of the consumer hands to the cutter.
        feeds["calls"] += 1
        feeds["events"] += len(events)
        return shipped_feed(events)

    pipeline.feed = counting_feed
    profiler = None
    if p.get("profile"):
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # CPU time: the thread's waits cost nothing

    class TimedPipelineThread(PipelineThread):
        """The agent's consumer thread, unchanged, reporting its own CPU time when it ends."""

        def run(self):
            if profiler is not None:
                profiler.enable()  # cProfile hooks the thread that enables it
            try:
                super().run()
            finally:
                thread_cpu["pipeline"] = time.thread_time()
                if profiler is not None:
                    profiler.disable()

    def feeder():
        # Plays the hook: each event is put at its paced time, stamped with the live clock.
        put, clock, perf, sleep = buffer.put, time.monotonic, time.perf_counter, time.sleep
        start = perf()
        late = 0
        for off, (b, s, x, y) in zip(offsets, rows):
            d = start + off - perf()
            if d > 0:
                sleep(d)
            elif d < -0.05:
                late += 1
            put(round(clock(), 6), b, s, x, y)
        thread_cpu["feeder"] = time.thread_time()
        thread_cpu["feeder_late"] = late
        thread_cpu["feeder_wall"] = perf() - start

    consumer = TimedPipelineThread(buffer, pipeline, on_verdicts, on_error)
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    consumer.start()
    feed_thread = threading.Thread(target=feeder, name="bench-feeder", daemon=True)
    feed_thread.start()
    feed_thread.join()
    # Let the consumer catch up with the last events, then stop it.
    deadline = time.monotonic() + 5.0
    while len(buffer) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(max(consumer.poll, consumer.gather) + 0.1)
    consumer.stop(timeout=5.0)
    cpu1, wall1 = _cpu_seconds(), time.perf_counter()
    process_cpu = cpu1 - cpu0
    input_seconds = float(offsets[-1]) if offsets else 0.0
    return {
        "events": len(rows),
        "feeds": feeds["calls"],
        "events_per_feed": feeds["events"] / max(feeds["calls"], 1),
        "profile_top": _profile_top(profiler) if profiler is not None else None,
        "input_seconds": input_seconds,
        "wall_seconds": wall1 - wall0,
        "process_cpu_s": process_cpu,
        "feeder_cpu_s": thread_cpu.get("feeder", float("nan")),
        "pipeline_cpu_s": thread_cpu.get("pipeline", float("nan")),
        "agent_cpu_s": process_cpu - thread_cpu.get("feeder", 0.0),
        "feeder_late_events": thread_cpu.get("feeder_late", 0),
        "feeder_wall_s": thread_cpu.get("feeder_wall", float("nan")),
        "buffer_total": buffer.total,
        "buffer_dropped": buffer.dropped,
        "blocks_scored": pipeline.blocks_scored,
        "verdict_batches": verdicts["batches"],
        "locks": verdicts["locks"],
        "errors": verdicts["errors"],
        "rss_start_mb": rss_start,
        "rss_model_loaded_mb": rss_loaded,
        "rss_end_mb": _rss_mb(),
        "rss_end_anon_mb": _status_mb("RssAnon"),
        "rss_end_file_mb": _status_mb("RssFile"),
        "peak_rss_mb": _peak_rss_mb(),
        "torch_imported": "torch" in sys.modules,
        "onnx_imported": "onnx" in sys.modules,
    }


def _profile_top(profiler, n: int = 15) -> list[dict]:
    """The functions with the most own time: where the pipeline thread's CPU goes."""
    import pstats

    stats = pstats.Stats(profiler).stats
    total = sum(tt for _cc, _nc, tt, _ct, _callers in stats.values()) or 1.0
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:n]
    return [{"function": f"{os.path.basename(file)}:{line}({name})", "calls": nc, "own_s": round(tt, 4),
             "own_share": round(tt / total, 3), "cumulative_s": round(ct, 4)}
            for (file, line, name), (_cc, nc, tt, ct, _callers) in rows]


def long_replay(p: dict) -> dict:
    from agent.replay import replay

    _model, pipeline = _load_scorer(p["model"])
    events = np.load(p["events"])
    slice_seconds = float(p["slice_seconds"])
    t = events["t"]
    edges = np.searchsorted(t, np.arange(t[0], t[-1] + slice_seconds, slice_seconds), side="left")[1:]
    edges = np.append(edges, len(events))
    rss = [_rss_mb()]
    verdicts = locks = 0
    lo = 0
    wall0, cpu0 = time.perf_counter(), _cpu_seconds()
    for hi in edges:
        if hi > lo:
            out = replay(events[lo:hi], pipeline)
            verdicts += len(out)
            locks += sum(v.verdict.act for v in out)
            del out
        lo = hi
        rss.append(_rss_mb())
    flushed, _ = pipeline.cutter.flush()  # end of input: a "drop" spec yields nothing here
    wall1, cpu1 = time.perf_counter(), _cpu_seconds()
    return {
        "events": len(events),
        "input_hours": float((t[-1] - t[0]) / 3600) if len(t) else 0.0,
        "wall_seconds": wall1 - wall0,
        "cpu_seconds": cpu1 - cpu0,
        "blocks_scored": pipeline.blocks_scored,
        "blocks_flushed_unscored": len(flushed),
        "decisions": verdicts,
        "locks": locks,
        "rss_mb_per_slice": rss,
        "peak_rss_mb": _peak_rss_mb(),
        "torch_imported": "torch" in sys.modules,
    }


def hook(p: dict) -> dict:
    from agent.capture import MouseHook
    from agent.ringbuffer import RingBuffer

    capacity = int(p.get("capacity", 65536))
    ns = {"move": [], "click": [], "scroll": []}
    perf = time.perf_counter_ns

    class TimedHook(MouseHook):
        """MouseHook with each callback timed from the outside; the bodies are the shipped ones."""

        def on_move(self, x, y, *injected):
            t0 = perf()
            super().on_move(x, y, *injected)
            ns["move"].append(perf() - t0)

        def on_click(self, x, y, button, pressed, *injected):
            t0 = perf()
            super().on_click(x, y, button, pressed, *injected)
            ns["click"].append(perf() - t0)

        def on_scroll(self, x, y, dx, dy, *injected):
            t0 = perf()
            super().on_scroll(x, y, dx, dy, *injected)
            ns["scroll"].append(perf() - t0)

    buffer = RingBuffer(capacity)
    h = TimedHook(buffer)
    h.start()
    listener = h._listener
    clock_id = time.pthread_getcpuclockid(listener.ident)
    listener_cpu0 = time.clock_gettime(clock_id)
    # the agent's second reader of the same input: XInput2 raw events (agent/injected_input.py)
    from agent.injected_input import XInputSources

    sources = XInputSources(time.monotonic).start()
    sources_clock = time.pthread_getcpuclockid(sources._thread.ident)
    sources_cpu0 = time.clock_gettime(sources_clock)
    cpu0 = _cpu_seconds()
    print("ready", flush=True)
    sys.stdin.readline()  # the parent has driven its input
    # The listener may still be working through a backlog: wait until nothing more arrives.
    seen = -1
    while seen != buffer.total:
        seen = buffer.total
        time.sleep(0.3)
    listener_cpu1 = time.clock_gettime(clock_id)
    sources_cpu1 = time.clock_gettime(sources_clock)
    cpu1 = _cpu_seconds()
    alive = h.alive
    raw_events = len(sources.take_xtest())
    sources.stop()
    h.stop(timeout=1.0)
    events = {k: len(v) for k, v in ns.items()}
    total = sum(events.values())

    def pct(values, q):
        return float(np.percentile(np.asarray(values) / 1000.0, q)) if values else float("nan")

    every = ns["move"] + ns["click"] + ns["scroll"]
    return {
        "events": events,
        "buffer_total": buffer.total,
        "buffer_dropped": buffer.dropped,
        "callback_us": {k: {"p50": pct(v, 50), "p99": pct(v, 99), "max": pct(v, 100)} for k, v in ns.items()},
        "all_p50_us": pct(every, 50),
        "all_p99_us": pct(every, 99),
        "listener_thread_cpu_s": listener_cpu1 - listener_cpu0,
        "listener_cpu_us_per_event": (listener_cpu1 - listener_cpu0) / max(total, 1) * 1e6,
        "raw_events_read": raw_events,
        "sources_thread_cpu_s": sources_cpu1 - sources_cpu0,
        "sources_cpu_us_per_raw_event": (sources_cpu1 - sources_cpu0) / max(raw_events, 1) * 1e6,
        "process_cpu_s": cpu1 - cpu0,
        "hook_alive": alive,
        "torch_imported": "torch" in sys.modules,
    }


MODES = {"overhead": overhead, "long": long_replay, "hook": hook}


def main(argv: list[str]) -> int:
    mode, params = argv[0], json.loads(argv[1])
    result = MODES[mode](params)
    print(json.dumps(result), flush=True)  # first, so the figures survive a failed assertion
    assert "torch" not in sys.modules, "the agent side of the benchmark imported torch"
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
