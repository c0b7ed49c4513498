"""``mouseguard demo``: the shipped demo model watching a genuine and an impostor session.

No display, no data beyond what ships: the two recordings go through the same pipeline as
live input (cutter, ONNX scorer, rolling decision), and the timeline is printed and drawn.
"""

from __future__ import annotations

from pathlib import Path

import models
from agent.config import Config, decision_settings, load_config
from agent.model_dir import load_model_dir
from agent.pipeline import make_pipeline
from agent.recordings import read_recording
from agent.replay import final_state, replay_printed, summary
from agent.scorer import Scorer


def run_demo(out_png: Path, print_fn=print, config: Config | None = None) -> dict:
    """``config``: the decision settings' source (default: the user's file, or the defaults when
    there is none; nothing is written), so the demo decides as the agent would."""
    model = load_model_dir(models.DEMO_MODEL)
    scorer = Scorer(model)
    config = config if config is not None else load_config(write_defaults=False)
    d = decision_settings(model, config)
    print_fn(f"mouseguard demo: the model of Balabit {model.user} (enrolled on its own sessions), "
             f"locking when the mean P(genuine) of the last {d.window} blocks falls below {d.threshold:.3f}, "
             f"then taking no decision for {d.grace_seconds:g} s (agent.grace_seconds)"
             f"{d.overrides_note()}.")
    panels, outcome = [], {}
    for label, path in (("genuine", models.DEMO_GENUINE), ("impostor", models.DEMO_IMPOSTOR)):
        events = read_recording(path)
        print_fn("")
        print_fn(f"== {label}: {Path(path).name}, {len(events)} events ==")
        verdicts = replay_printed(events, make_pipeline(model, scorer, window=d.window, threshold=d.threshold,
                                                         grace_seconds=d.grace_seconds,
                                                         unjudged_seconds=d.unjudged_seconds), print_fn)
        print_fn(f"-> {summary(verdicts)}")
        outcome[label] = final_state(verdicts)
        panels.append((f"{label}: {Path(path).name} - {summary(verdicts)}", verdicts, float(events["t"][0])))
    from agent.timeline_plot import draw_timelines

    draw_timelines(panels, d.threshold, out_png)
    print_fn("")
    print_fn(f"genuine user: {outcome['genuine']}; impostor: {outcome['impostor']}. Timeline chart: {out_png}")
    return outcome
