"""Benchmark 5, enrolment: training.enrol.enrol from files, wall time by phase."""

from __future__ import annotations

import os
import time

import models
from agent.blocks import cut_blocks
from agent.recordings import read_recording
from benchmarks.context import Context
from benchmarks.report import Report

#: (where the user-model path looks a step up, its name): the phases timed inside an enrolment.
ENROL_PHASES = (("training.families.cnn.model:CNNModel", "fit"), ("training.families.cnn.model:CNNModel", "logits"),
                ("training.user_model.fit", "platt"), ("training.user_model.fit", "calibrate"),
                ("training.families.cnn.model:CNNModel", "to_onnx"), ("training.user_model.fit", "write_model_dir"))


def bench_enrol(ctx: Context, report: Report) -> None:
    import importlib

    from training.enrol import enrol
    from training.families.cnn.train import FitConfig

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
    # Phase times: the steps of the user-model path, wrapped where it looks them up (whichever
    # of them exist: the path evolves, the benchmark must not break on that).
    originals = {}
    for where, name in ENROL_PHASES:
        module, _, cls = where.partition(":")
        owner = importlib.import_module(module)
        owner = getattr(owner, cls) if cls else owner
        if callable(getattr(owner, name, None)):
            originals[(owner, name)] = getattr(owner, name)
    try:
        for (owner, name), fn in originals.items():
            setattr(owner, name, timed(name, fn))
        t1, c1 = time.perf_counter(), time.process_time()
        summary = enrol(recordings, "bench", ctx.tmp / "enrolled", cfg=cfg, sources=files)
        enrol_s, enrol_cpu = time.perf_counter() - t1, time.process_time() - c1
    finally:
        for (owner, name), fn in originals.items():
            setattr(owner, name, fn)
    wall = read_s + enrol_s
    goal_met = None if ctx.quick else wall <= 30
    report.add("enrol.wall_s", "enrolment from files, wall time" + (" (quick: small, 1 epoch)" if ctx.quick else ""),
               wall, "s", "≤ 30 s" + (" (full run only)" if ctx.quick else ""), goal_met)
    report.add("enrol.cpu_s", "enrolment CPU time (wall time on an idle machine: torch uses 1 thread)",
               read_cpu + enrol_cpu, "s", "≤ 30 s" + (" (full run only)" if ctx.quick else ""),
               None if ctx.quick else read_cpu + enrol_cpu <= 30)
    report.add("enrol.blocks", "enrolment: own blocks", summary["rows"], "count", "≈ 2 000" if not ctx.quick else "")
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
