"""An agent that cannot start leaves a trace: the log, the status file and a desktop notification
(issue 20, item 2). Before, it printed one line on a stderr nobody reads when autostarted, and
`mouseguard status` went on describing the previous run."""

import os
import subprocess
import sys
import time

import pytest

from agent import states
from agent.status import EXIT_NOT_RUNNING, write_status


def fake_notify_send(tmp_path):
    """A notify-send that writes its arguments to a file: the daemon cannot exist here, the
    command line the agent runs can be checked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "notify-send.calls"
    script = bin_dir / "notify-send"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {calls}\necho --- >> {calls}\n')
    script.chmod(0o755)
    return bin_dir, calls


def mg(*args, env):
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("setup, says", [
    ("config", "unknown key agent.actoin"),
    ("no display", "no X display"),
    ("wayland", "Wayland gives applications no global mouse hook"),
    ("model", "no model directory there"),
])
def test_a_refusal_goes_to_log_status_and_notification(tmp_path, xserver, setup, says):
    home = tmp_path / "mg"
    bin_dir, calls = fake_notify_send(tmp_path)
    env = {**os.environ, "MOUSEGUARD_HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11"}
    env.pop("WAYLAND_DISPLAY", None)
    args = ["run", "--no-tray"]
    if setup == "config":
        (home / "config").mkdir(parents=True)
        (home / "config" / "config.toml").write_text('[agent]\nactoin = "lock"\n')
    elif setup == "no display":
        env["DISPLAY"] = ""
    elif setup == "wayland":
        env["XDG_SESSION_TYPE"] = "wayland"
    else:
        args += ["--model", str(tmp_path / "no-such-model")]
    # the previous run's status, still saying "protected"
    write_status(home / "state" / "status.json", states.PROTECTED, time.time() - 3600, 40, 0.9, 1,
                 now=time.time() - 3500)

    proc = mg(*args, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr

    log = (home / "logs" / "mouseguard.log").read_text()
    assert "refused to start" in log and says in log
    status = mg("status", env=env)
    assert status.returncode == EXIT_NOT_RUNNING
    first = status.stdout.splitlines()[0]
    assert first.startswith("not running: refused to start: ") and says in first, status.stdout
    assert f"log: {home / 'logs' / 'mouseguard.log'}" in status.stdout
    sent = calls.read_text().split("---\n")[0].splitlines()
    assert sent[:3] == ["--app-name=mouseguard", "--urgency=critical", "--"]
    assert sent[3] == "mouseguard did not start" and says in sent[4]


def test_a_refused_second_start_leaves_the_running_agents_status_alone(tmp_path):
    """From a terminal without a display while the desktop's agent runs: refused, logged, but the
    status file is the running agent's and must go on saying what it does."""
    from agent.instance import InstanceLock

    home = tmp_path / "mg"
    bin_dir, calls = fake_notify_send(tmp_path)
    env = {**os.environ, "MOUSEGUARD_HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "DISPLAY": "", "XDG_SESSION_TYPE": "x11"}
    with InstanceLock(home / "state" / "agent.lock"):
        write_status(home / "state" / "status.json", states.PROTECTED, time.time(), 3, 0.9, os.getpid())
        before = (home / "state" / "status.json").read_text()
        proc = mg("run", "--no-tray", env=env)
        assert proc.returncode == 2 and "no X display" in proc.stderr
    # (compared as a file: `status` believes only a live agent's answer on its control socket)
    assert (home / "state" / "status.json").read_text() == before
    assert "refused to start: no X display" in (home / "logs" / "mouseguard.log").read_text()
    assert not calls.exists()
