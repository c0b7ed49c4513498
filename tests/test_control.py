"""`mouseguard pause [MIN] | resume | stop` over the agent's private Unix socket (issue 20, item 3):
the real socket, a real agent process under Xvfb, the caps on pausing."""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from agent import states
from agent.config import AgentConfig, Config
from agent.control import ControlError, ControlServer, NotRunning, request
from agent.pauses import PauseAllowance
from agent.responses.actor import Actor
from agent.runner import Agent
from tests.fakes import FakeLocker, RecordingTray
from tests.waiting import wait_for


@pytest.fixture
def short_dir():
    """A folder with a short path: a Unix socket path holds at most 107 bytes, pytest's tmp_path
    can be longer."""
    path = Path(tempfile.mkdtemp(prefix="mg", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def echo(request_):
    return True, f"did {request_['command']} {request_.get('minutes')}"


def test_request_and_reply_over_a_private_socket(short_dir):
    path = short_dir / "run" / "control.sock"
    server = ControlServer(path, echo)
    server.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert request("pause", path, minutes=5) == (True, "did pause 5")
        assert request("stop", path) == (True, "did stop None")
        # anything else is refused by the channel itself, before the agent sees it
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(path))
            raw.sendall(b'{"command": "rm -rf"}\n')
            assert json.loads(raw.makefile().readline())["ok"] is False
    finally:
        server.stop()
    assert not path.exists()
    with pytest.raises(NotRunning, match="not running"):
        request("pause", path)


def test_a_leftover_socket_is_replaced_and_anything_else_refused(short_dir):
    path = short_dir / "control.sock"
    old = socket.socket(socket.AF_UNIX)
    old.bind(str(path))
    old.close()  # a dead agent's socket: nobody answers
    with pytest.raises(NotRunning):
        request("resume", path)
    server = ControlServer(path, echo)
    server.start()
    assert request("resume", path)[0]
    server.stop()
    path.write_text("not a socket")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(path, echo).bind()


def test_an_open_folder_is_made_private(short_dir):
    folder = short_dir / "run"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    server = ControlServer(folder / "c.sock", echo)
    server.bind()
    server.stop()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as a second account")
def test_another_account_is_refused(short_dir):
    """Even with the folder and socket opened up by mistake, the peer's uid is checked."""
    import pwd

    folder = short_dir / "run"
    path = folder / "c.sock"
    asked = []
    server = ControlServer(path, lambda r: (asked.append(r), (True, "done"))[1])
    server.start()
    try:
        nobody = pwd.getpwnam("nobody").pw_uid
        script = (f"import os, sys\nsys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
                  "from agent.control import request\n"
                  f"os.setuid({nobody})\n"  # after the imports: nobody cannot read this venv's stdlib
                  f"try:\n    print(request('stop', {str(path)!r}))\nexcept Exception as e:\n    print(e)\n")
        client = [sys.executable, "-c", script]
        closed = subprocess.run(client, capture_output=True, text=True, timeout=30)
        assert "permission denied" in closed.stdout, closed.stderr  # 0700 folder, 0600 socket
        os.chmod(short_dir, 0o755)
        os.chmod(folder, 0o755)
        os.chmod(path, 0o666)
        opened = subprocess.run(client, capture_output=True, text=True, timeout=30)
        assert "(False, 'refused: not your agent')" in opened.stdout, opened.stderr
        assert asked == []
    finally:
        server.stop()


def test_pause_allowance_counts_per_day_and_survives_a_restart(tmp_path):
    day = time.mktime((2026, 12, 6, 10, 0, 0, 0, 0, -1))
    allowance = PauseAllowance(tmp_path / "pauses.json", per_day=2)
    assert allowance.take(day) and allowance.take(day + 60)
    assert not PauseAllowance(tmp_path / "pauses.json", per_day=2).take(day + 120)  # a new agent: same count
    assert stat.S_IMODE((tmp_path / "pauses.json").stat().st_mode) == 0o600
    assert PauseAllowance(tmp_path / "pauses.json", per_day=2).take(day + 86400)  # the next day


@pytest.fixture
def live_agent(tmp_path, xserver, synth_model):
    agents = []

    def make(**agent_config):
        tray = RecordingTray()
        config = Config(agent=AgentConfig(**agent_config))
        agent = Agent(config, tray, Actor("lock", FakeLocker(), tray.notify), model_dir=synth_model, user="alice",
                      status_path=tmp_path / "state" / "status.json", recordings_dir=tmp_path / "rec", heartbeat=0.5)
        agent.start()
        agents.append(agent)
        wait_for(lambda: agent.hook_ok, what="the hook to run")
        return agent, tray

    yield make
    for a in agents:
        a.stop()


def test_pauses_are_capped_in_length_and_number(live_agent):
    agent, tray = live_agent(max_pause_minutes=30, pauses_per_day=2, pause_minutes=45)
    done, said = agent.control("pause", 31)
    assert not done and "at most 30 minutes (agent.max_pause_minutes)" in said and tray.state == states.PROTECTED
    assert not agent.control("resume")[0]  # nothing to resume
    done, said = agent.control("pause")  # the default length, cut to the cap
    assert done and "1 pause left today" in said and tray.state == states.PAUSED
    assert 29 * 60 < agent.paused_until - time.time() <= 30 * 60
    assert agent.control("resume") == (True, "resumed: protecting again") and tray.state == states.PROTECTED
    assert agent.control("pause", 0.5)[0]
    agent.control("resume")
    done, said = agent.control("pause", 1)
    assert not done and "no pause left today: 2 a day (agent.pauses_per_day)" in said
    assert tray.state == states.PROTECTED
    again, _ = live_agent(max_pause_minutes=30, pauses_per_day=2)  # restarting gives no fresh allowance
    assert not again.control("pause", 1)[0]


def test_the_tray_menu_goes_through_the_same_caps(live_agent):
    agent, tray = live_agent(max_pause_minutes=10, pauses_per_day=1)
    agent.from_tray("pause", 15)  # a menu built for a longer pause than the cap: refused, and said
    assert tray.state == states.PROTECTED
    assert tray.notifications[-1] == ("mouseguard: pause refused",
                                      "a pause lasts more than 0 and at most 10 minutes (agent.max_pause_minutes)")
    agent.from_tray("pause", 10)
    assert tray.state == states.PAUSED
    agent.from_tray("resume")
    agent.from_tray("pause", 10)
    assert tray.state == states.PROTECTED and "no pause left today" in tray.notifications[-1][1]
    agent.from_tray("stop")
    assert tray.stopped.is_set() and agent.stop_reason == "stopped from the tray menu"


def mg(*args, env, timeout=60):
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_pause_resume_stop_a_running_agent_from_the_command_line(short_dir, xserver, synth_model):
    from tests.fakes import fake_session_bin

    bin_dir, lock_calls = fake_session_bin(short_dir / "bin")  # the owner unlocks at once
    env = {**os.environ, "MOUSEGUARD_HOME": str(short_dir / "mg"), "DISPLAY": xserver.display,
           "XDG_SESSION_TYPE": "x11", "XDG_SESSION_ID": "7", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("XDG_RUNTIME_DIR", None)
    assert mg("pause", env=env).returncode == 3  # no agent yet: "not running", as status says it
    agent = subprocess.Popen([sys.executable, "-m", "agent", "run", "--no-tray", "--model", str(synth_model)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sock = short_dir / "mg" / "run" / "control.sock"
        wait_for(lambda: sock.exists(), timeout=30, what="the control socket")
        wait_for(lambda: mg("status", env=env).returncode == 0, timeout=30, what="the agent to protect")

        paused = mg("pause", "5", env=env)
        assert paused.returncode == 0 and paused.stdout.startswith("paused until "), paused.stderr
        assert lock_calls.read_text().count("lock-session 7") == 1  # locked first: the password paused it
        status = mg("status", env=env)
        assert status.returncode == 1 and status.stdout.startswith("paused since")
        too_long = mg("pause", "600", env=env)
        assert too_long.returncode == 1 and too_long.stderr.count("\n") == 1
        assert "at most 60 minutes (agent.max_pause_minutes)" in too_long.stderr
        bad = mg("pause", "0.0", env=env)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "greater than 0" in bad.stderr
        assert mg("resume", env=env).returncode == 0
        assert mg("status", env=env).stdout.startswith("protected since")

        stopped = mg("stop", env=env)
        assert (stopped.returncode, stopped.stdout) == (0, "mouseguard stopped\n"), stopped.stderr
        assert lock_calls.read_text().count("lock-session 7") == 2
        assert agent.wait(15) == 0
        status = mg("status", env=env)
        assert status.returncode == 3
        assert status.stdout.startswith("not running: stopped with `mouseguard stop` ("), status.stdout
        assert not sock.exists()
        history = mg("history", env=env).stdout
        kinds = [line.split()[2] for line in history.splitlines()]
        assert kinds[0] == "started", history
        assert kinds.index("paused") < kinds.index("resumed") < kinds.index("stopped"), history
        assert "paused with `mouseguard pause` for 5 min" in history
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(15)
