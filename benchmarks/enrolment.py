"""Benchmark 5, enrolment: training.enrol.enrol from files, wall time by phase."""

from __future__ import annotations

import os
import time

import models
from agent.blocks import cut_blocks
from agent.recordings import read_recording
from benchmarks.context import Context
from benchmarks.report import Report

ENROL_PHASES = ("fit_user", "predict", "predict_logits", "platt", "calibrate", "export_model_dir")


def bench_enrol(ctx: Context, report: Report) -> None:
    from training import user_model
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
    # Phase times: the steps train_personal_model calls, wrapped where it looks them up
    # (whichever of them the module has: it evolves, the benchmark must not break on that).
    originals = {name: getattr(user_model, name) for name in ENROL_PHASES if callable(getattr(user_model, name, None))}
    try:
        for name, fn in originals.items():
            setattr(user_model, name, timed(name, fn))
        t1, c1 = time.perf_counter(), time.process_time()
        summary = enrol(recordings, "bench", ctx.tmp / "enrolled", cfg=cfg, sources=files)
        enrol_s, enrol_cpu = time.perf_counter() - t1, time.process_time() - c1
    finally:
        for name, fn in originals.items():
            setattr(user_model, name, fn)
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
