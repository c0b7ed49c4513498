"""The report of ``mouseguard bench``: its figures, and the JSON and markdown written from them."""

from __future__ import annotations

import dataclasses
import math

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
            (f"Load average (1/5/15 min) at start {load_str(meta['load_start'])}, at end "
             f"{load_str(meta['load_end'])}: other work shares these cores, so latencies are upper bounds."),
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


def load_str(load) -> str:
    return " / ".join(f"{x:.2f}" for x in load)
