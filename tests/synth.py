"""Generated mouse recordings for tests: users who differ in speed, curvature and timing.

Each synthetic user moves the pointer between random targets along curved paths at a speed
and sampling rhythm of their own, clicks at the end of some movements and pauses (sometimes
longer than the 2 s gap) between them. Differences are large enough that a small CNN tells
the users apart after a couple of epochs, which is what fit/export/score tests need.
"""

from __future__ import annotations

import numpy as np

from agent.events import BUTTONS, EVENT_DTYPE, LEFT, MOVE, NO_BUTTON, PRESSED, RELEASED, STATE_NAMES, make_events
from agent.recordings import BALABIT_HEADER

STYLES = {
    "alice": {"speed": 900.0, "curve": 0.15, "rate": 0.016},
    "bob": {"speed": 2600.0, "curve": 0.6, "rate": 0.008},
    "carol": {"speed": 1500.0, "curve": -0.4, "rate": 0.012},
}


def synth_events(user: str, seconds: float = 120.0, seed: int = 0) -> np.ndarray:
    style = STYLES[user]
    rng = np.random.default_rng(seed)
    rows = []
    t, x, y = 0.0, 640.0, 400.0
    while t < seconds:
        tx, ty = rng.uniform(50, 1230), rng.uniform(50, 750)
        dist = np.hypot(tx - x, ty - y)
        duration = max(0.15, dist / style["speed"] * rng.uniform(0.8, 1.2))
        n = max(3, int(duration / style["rate"]))
        s = np.linspace(0, 1, n)
        ease = 3 * s**2 - 2 * s**3
        # a bend perpendicular to the straight line, peaking mid-way
        nx, ny = -(ty - y) / (dist + 1e-9), (tx - x) / (dist + 1e-9)
        bend = style["curve"] * dist * np.sin(np.pi * s)
        px = x + (tx - x) * ease + nx * bend
        py = y + (ty - y) * ease + ny * bend
        dts = style["rate"] * rng.uniform(0.5, 1.5, n)
        for i in range(n):
            t += dts[i]
            rows.append((t, NO_BUTTON, MOVE, int(round(px[i])), int(round(py[i]))))
        x, y = tx, ty
        if rng.random() < 0.5:
            t += 0.08
            rows.append((t, LEFT, PRESSED, int(x), int(y)))
            t += 0.1
            rows.append((t, LEFT, RELEASED, int(x), int(y)))
        t += rng.choice([0.2, 0.5, 3.0], p=[0.6, 0.3, 0.1])
    return make_events(rows) if rows else np.zeros(0, EVENT_DTYPE)


def write_sapimouse(path, events):
    """SapiMouse's format: milliseconds, CRLF line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["client timestamp,button,state,x,y"] + [
        f"{int(round(t * 1000))},{BUTTONS[b]},{STATE_NAMES[s]},{x},{y}" for t, b, s, x, y in events.tolist()]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())


def write_balabit(path, events):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(BALABIT_HEADER)] + [
        f"{t + 0.1:.3f},{t:.3f},{BUTTONS[b]},{STATE_NAMES[s]},{x},{y}" for t, b, s, x, y in events.tolist()]
    path.write_text("\n".join(lines) + "\n")


def write_mauth(path, events):
    """The mAuth study's raw pynput log: ID,Timestamp,X,Y,Button,Duration (Button -1 a move, 0 a
    left press with Duration -1 and its release with the seconds held)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines, pressed = ["ID,Timestamp,X,Y,Button,Duration"], None
    for t, b, s, x, y in events.tolist():
        if s == PRESSED:
            pressed = t
            lines.append(f"0,{t:.6f},{x},{y},0,-1")
        elif s == RELEASED:
            lines.append(f"0,{t:.6f},{x},{y},0,{t - pressed:.6f}")
        else:
            lines.append(f"0,{t:.6f},{x},{y},-1,-1")
    path.write_text("\n".join(lines) + "\n")
