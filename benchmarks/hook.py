"""Benchmark 3, hook cost: every MouseHook callback timed under a real pynput listener on a private Xvfb."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from benchmarks.child import child_env
from benchmarks.context import Context
from benchmarks.report import Report


def bench_hook(ctx: Context, report: Report) -> None:
    x = ctx.x()
    env = child_env(DISPLAY=x.display, XDG_SESSION_TYPE="x11")
    env.pop("WAYLAND_DISPLAY", None)
    moves = 1000 if ctx.quick else 4000
    clicks = 10 if ctx.quick else 40
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.agent_process", "hook", "{}"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"hook child did not start: {line!r} {proc.stderr.read()[-2000:]}")
        x.xdotool("mousemove", "640", "400")
        steps = [(7, 4), (-6, -5), (5, -3), (-6, 4)]  # stays near the centre, never a zero move
        args: list[str] = []
        for i in range(moves):
            dx, dy = steps[i % len(steps)]
            args += ["mousemove_relative", "--", str(dx), str(dy)]
        t0 = time.perf_counter()
        for start in range(0, len(args), 2000):
            x.xdotool(*args[start:start + 2000])
        for _ in range(clicks):
            x.xdotool("click", "1", "click", "4", "click", "5")
        drive_s = time.perf_counter() - t0
        out, _ = proc.communicate("done\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = json.loads(out.strip().splitlines()[-1])
    sent = moves + clicks * 2 + clicks * 2  # a click is a press and a release; wheel clicks give 2 scroll events
    received = sum(r["events"].values())
    report.add("hook.callback_p50_us", "hook callback time (all callbacks): p50", r["all_p50_us"], "µs")
    report.add("hook.callback_p99_us", "hook callback time (all callbacks): p99", r["all_p99_us"], "µs")
    report.add("hook.move_p50_us", "on_move time: p50", r["callback_us"]["move"]["p50"], "µs")
    report.add("hook.move_p99_us", "on_move time: p99", r["callback_us"]["move"]["p99"], "µs")
    report.add("hook.listener_cpu_us_per_event", "pynput listener thread CPU per event (pynput + Xlib + callback)",
               r["listener_cpu_us_per_event"], "µs")
    report.add("hook.sources_cpu_us_per_event", "injected-input watcher thread CPU per XInput2 raw event "
               "(python-xlib parse + bookkeeping)", r["sources_cpu_us_per_raw_event"], "µs")
    report.add("hook.events_received", "hook events received (of xdotool input)", received, "count",
               f"{sent} sent", received >= moves)
    report.details["hook"] = {**r, "xdotool_moves": moves, "xdotool_clicks": clicks, "xdotool_wheel_clicks": 2 * clicks,
                              "events_sent_approx": sent, "drive_seconds": drive_s,
                              "method": "agent.capture.MouseHook subclass wrapping on_move/on_click/on_scroll with "
                                        "perf_counter_ns, real pynput listener on a private Xvfb, input by xdotool "
                                        "(XTest); child process without torch"}
