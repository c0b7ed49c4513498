"""The demo's score-timeline chart: what it draws stays visible under the lock bands."""

from types import SimpleNamespace

from PIL import Image

from agent.states import COLOURS, LOCKED
from agent.timeline_plot import MARGIN_L, MARGIN_R, MARGIN_T, PANEL_H, MARGIN_B, W, draw_timelines, lock_label_positions

DOT = (150, 150, 150)


def _verdict(t, score, act, rolling=None):
    return SimpleNamespace(t=t, verdict=SimpleNamespace(score=score, act=act, rolling=rolling))


def test_lock_bands_hide_neither_dots_nor_labels(tmp_path):
    # a lock every 2 s, each block's dot inside the next lock's band
    verdicts = [_verdict(float(t), 0.2, act=t >= 4, rolling=0.3) for t in range(0, 200, 2)]
    png = tmp_path / "chart.png"
    draw_timelines([("impostor", verdicts, 0.0)], 0.5, png)
    img = Image.open(png).convert("RGB")
    x0, x1, y0, y1 = MARGIN_L, W - MARGIN_R, MARGIN_T, PANEL_H - MARGIN_B
    dot_y = round(y1 - (y1 - y0) * 0.2)
    for v in verdicts[5:10]:
        x = round(x0 + (x1 - x0) * v.t / verdicts[-1].t)
        assert img.getpixel((x, dot_y)) == DOT
    # the threshold's label and the "lock" labels are drawn on top, in the lock colour (the
    # font is anti-aliased: red-dominant pixels, which the pink of a band is not)
    def text_pixels(xs, ys):
        return sum(1 for x in xs for y in ys if _reddish(img.getpixel((x, y))))

    assert text_pixels(range(x0, x1), range(y0 + 4, y0 + 16)) > 20
    ty = round(y1 - (y1 - y0) * 0.5)
    assert text_pixels(range(x1 - 120, x1 - 40), range(ty - 14, ty - 2)) > 20


def _reddish(pixel):
    r, g, b = pixel
    return abs(r - COLOURS[LOCKED][0]) < 30 and g < 150 and b < 150


def test_lock_labels_stay_inside_the_panel_and_apart(tmp_path):
    # before: the label of a lock at the end ran out of the panel, and a label was placed 40 px
    # after the previous lock whatever its text's width
    verdicts = [_verdict(float(t), 0.2, act=t in (10, 96, 100), rolling=0.3) for t in range(0, 101, 2)]
    png = tmp_path / "chart.png"
    draw_timelines([("impostor", verdicts, 0.0)], 0.5, png)
    img = Image.open(png).convert("RGB")
    x1, y0 = W - MARGIN_R, MARGIN_T
    outside = sum(1 for x in range(x1 + 1, W) for y in range(y0 + 2, y0 + 18) if _reddish(img.getpixel((x, y))))
    assert outside == 0
    lefts = lock_label_positions([100.0, 130.0, 150.0, 400.0, 878.0], 20.0, MARGIN_L, x1)
    assert all(b - a >= 26 for a, b in zip(lefts, lefts[1:]))  # a label's width and a gap apart
    assert all(MARGIN_L < left and left + 20 <= x1 for left in lefts) and lefts[-1] < 878.0
