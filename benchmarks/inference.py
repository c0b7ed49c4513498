"""Benchmark 1, block inference: the shipped ONNX model beside torch eager mode and onnxruntime's floor."""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

import numpy as np

import models
from agent.blocks import cut_blocks
from agent.recordings import read_recording
from benchmarks.context import Context
from benchmarks.report import Report


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


def torch_twin(onnx_path: Path, channels: int):
    """The shipped network in torch eager mode: BlockClassifier with the ONNX file's weights."""
    import onnx
    import torch
    from onnx import numpy_helper

    from training.families.cnn.network import BlockClassifier, GenuineProbability

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
        "torch_model": "training.families.cnn.network.BlockClassifier + GenuineProbability, weights copied from "
                       "model.onnx (onnx.numpy_helper), eval(), inference_mode, 1 thread",
        "ort_profile_1_block": profile,
    }
