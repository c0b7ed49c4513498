"""Benchmark 4, long replay: eight hours of real input through the pipeline, memory and blocks counted."""

from __future__ import annotations

import numpy as np

from agent.blocks import BlockCutter, BlockSpec
from agent.events import is_scroll
from benchmarks.child import run_agent_child
from benchmarks.context import Context
from benchmarks.recordings import LOOP_PAUSE, loop_recordings
from benchmarks.report import Report


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



def bench_long(ctx: Context, report: Report) -> None:
    seconds = 600.0 if ctx.quick else 8 * 3600.0
    events = loop_recordings(ctx.recordings(), seconds)
    path = ctx.tmp / "long.npy"
    np.save(path, events)
    expected = independent_block_count(events, ctx.spec)
    # the streaming cutter without the final flush: a live stream never ends its last sequence
    by_cutter = len(BlockCutter(ctx.spec).push(events)[0])
    slice_s = 60.0 if ctx.quick else 3600.0
    r, _ = run_agent_child("long", {"model": str(ctx.model_path), "events": str(path), "slice_seconds": slice_s},
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
    report.details["long"] = {**r, "event_span_hours": r["input_hours"], "blocks_by_cut_blocks": by_cutter,
                              "slice_seconds": slice_s,
                              "events_per_second_replayed": r["events"] / max(r["wall_seconds"], 1e-9),
                              "input": f"{'demo recordings' if ctx.quick else 'Balabit user7 sessions'} looped, "
                                       f"timestamps shifted, {LOOP_PAUSE:g} s between copies"}
