"""A score-timeline chart drawn with Pillow (the runtime has no plotting library).

One panel per replayed recording: block P(genuine) as dots, the rolling score as a line, the
threshold as a dashed line, and a red band where the agent locked.
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from agent.files import atomic_open
from agent.states import COLOURS, LOCKED, PROTECTED

W, PANEL_H, MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 900, 260, 60, 20, 34, 36


def _label(d: ImageDraw.ImageDraw, at, text: str, colour, font) -> None:
    """Text on a white patch, legible over bands and lines."""
    left, top, right, bottom = d.textbbox(at, text, font=font)
    d.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill="white")
    d.text(at, text, fill=colour, font=font)


def lock_label_positions(locks: list[float], width: float, x0: float, x1: float, gap: float = 6) -> list[float]:
    """Left edges for the "lock" labels of bands at ``locks`` (x, ascending): right of the band,
    or left of it where the panel ends, and none where it would touch the label before it (the
    band still shows that lock) — labels never overprint each other or leave the panel."""
    lefts: list[float] = []
    for x in locks:
        left = x + 5 if x + 5 + width <= x1 - 2 else x - 5 - width
        if left < x0 + 2 or (lefts and left < lefts[-1] + width + gap):
            continue
        lefts.append(left)
    return lefts


def draw_timelines(panels, threshold: float, path) -> None:
    """``panels``: list of ``(title, verdicts, t0)``; writes a PNG to ``path``."""
    font = ImageFont.load_default()
    img = Image.new("RGB", (W, PANEL_H * len(panels)), "white")
    d = ImageDraw.Draw(img)
    for p, (title, verdicts, t0) in enumerate(panels):
        top = p * PANEL_H
        x0, x1 = MARGIN_L, W - MARGIN_R
        y0, y1 = top + MARGIN_T, top + PANEL_H - MARGIN_B
        t_end = max([v.t - t0 for v in verdicts] + [1.0])

        def xy(t, s):
            return x0 + (x1 - x0) * (t - t0) / t_end, y1 - (y1 - y0) * s

        d.text((x0, top + 10), title, fill="black", font=font)
        d.rectangle([x0, y0, x1, y1], outline=(180, 180, 180))
        for s in (0.0, 0.5, 1.0):
            _, y = xy(t0, s)
            d.text((x0 - 30, y - 6), f"{s:.1f}", fill="black", font=font)
        for minute in range(0, int(t_end // 60) + 1):
            x, _ = xy(t0 + minute * 60, 0)
            d.line([x, y1, x, y1 + 4], fill="black")
            d.text((x - 8, y1 + 8), f"{minute}m", fill="black", font=font)
        d.text((x0 + (x1 - x0) // 2 - 80, y1 + 20), "time in the session (min)", fill="black", font=font)
        # Layers from the back: lock bands, threshold, dots, rolling line, labels — so that no
        # band hides a dot, the threshold or a label drawn before it.
        locks = [xy(v.t, 0)[0] for v in verdicts if v.verdict.act]
        for x in locks:
            d.rectangle([x - 3, y0 + 1, x + 3, y1 - 1], fill=(250, 200, 205))
        _, ty = xy(t0, threshold)
        for x in range(x0, x1, 12):
            d.line([x, ty, min(x + 6, x1), ty], fill=COLOURS[LOCKED], width=1)
        for v in verdicts:
            x, y = xy(v.t, v.verdict.score)
            d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(150, 150, 150))
        line = [xy(v.t, v.verdict.rolling) for v in verdicts if v.verdict.rolling is not None]
        if len(line) > 1:
            d.line(line, fill=COLOURS[PROTECTED], width=2)
        _label(d, (x1 - 120, ty - 14), f"threshold {threshold:.3g}", COLOURS[LOCKED], font)
        width = d.textlength("lock", font=font)
        for left in lock_label_positions(locks, width, x0, x1):
            _label(d, (left, y0 + 4), "lock", COLOURS[LOCKED], font)
        d.text((x1 - 300, top + 10), "dots: block P(genuine)   line: rolling score", fill=(90, 90, 90), font=font)
    with atomic_open(path) as f:  # a full disk leaves the previous chart, not half of one
        img.save(f, format="PNG")
