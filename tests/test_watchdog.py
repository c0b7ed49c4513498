"""The watchdog (issue 19, item 3): an agent killed with SIGKILL locks the session; one stopped
with ``mouseguard stop`` does not. A real ``mouseguard run`` under Xvfb, its real watchdog
process, a real UDP syslog receiver for the fleet event; only logind is a fake ``loginctl``."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from agent.watchdog import CLEAN_STOP, agent_ended_cleanly
from tests.fakes import fake_session_bin
from tests.rfc5424 import UdpReceiver
from tests.test_control import short_dir  # noqa: F401 (a fixture)
from tests.waiting import wait_for


def test_only_a_clean_stop_said_before_the_end_of_the_pipe_is_clean():
    assert agent_ended_cleanly(io.StringIO(CLEAN_STOP + "\n"))
    assert not agent_ended_cleanly(io.StringIO(""))  # EOF alone: killed
    assert not agent_ended_cleanly(io.StringIO(CLEAN_STOP + "\nsomething after\n"))


def test_the_watchdog_imports_nothing_heavy():
    code = ("import sys, agent.watchdog, agent.responses.actor, agent.forwarding, agent.logs\n"
            "print(sorted(m for m in ('numpy', 'torch', 'pynput', 'onnxruntime') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.fixture
def receiver():
    r = UdpReceiver()
    yield r
    r.close()


def run_agent(env, model):
    return subprocess.Popen([sys.executable, "-m", "agent", "run", "--no-tray", "--model", str(model)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def mg(*args, env):
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_kill_9_of_the_agent_locks_the_session_and_stop_does_not(short_dir, xserver, synth_model,  # noqa: F811
                                                                   receiver):
    # before: a kill -9 ended protection in silence; status said "not running" and nothing locked
    bin_dir, calls = fake_session_bin(short_dir / "bin")
    home = short_dir / "mg"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(f'[forwarding]\nsyslog = "{receiver.target}"\n')
    env = {**os.environ, "MOUSEGUARD_HOME": str(home), "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11",
           "XDG_SESSION_ID": "7", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("XDG_RUNTIME_DIR", None)
    log_file = home / "logs" / "mouseguard.log"

    agent = run_agent(env, synth_model)
    try:
        wait_for(lambda: mg("status", env=env).returncode == 0, timeout=40, what="the agent to protect")
        assert mg("stop", env=env).returncode == 0
        assert agent.wait(15) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
    locks = calls.read_text().count("lock-session 7")
    assert locks == 1  # the owner check's lock before the stop; the watchdog stayed calm

    agent = run_agent(env, synth_model)
    try:
        wait_for(lambda: mg("status", env=env).returncode == 0, timeout=40, what="the agent to protect again")
        status_file = home / "state" / "status.json"
        forged = {**json.loads(status_file.read_text()), "state": "paused", "detail": "forged"}
        for drop in ((), ("control",)):  # also a file that names no control socket to ask
            status_file.write_text(json.dumps({k: v for k, v in forged.items() if k not in drop}))
            said = mg("status", env=env)  # the agent's own answer, not the file's
            assert said.returncode == 0 and said.stdout.startswith("protected since"), said.stdout
        agent.send_signal(signal.SIGKILL)
        agent.wait(15)
        wait_for(lambda: calls.read_text().count("lock-session 7") == locks + 1, timeout=20,
                 what="the watchdog's lock")
    finally:
        if agent.poll() is None:
            agent.kill()
    wait_for(lambda: "protection_stopped" in receiver.names(), timeout=10, what="the fleet event")
    text = log_file.read_text()
    assert f"the mouseguard agent (pid {agent.pid}) ended without an authenticated stop" in text
    assert "session locked: locked session 7 via logind" in text
    assert "locked" in mg("history", env=env).stdout.split()
    # a status file claiming a live agent (a running pid, written just now) that nobody answers for
    status_file.write_text(json.dumps({**forged, "state": "protected", "pid": os.getpid(), "updated": time.time()}))
    said = mg("status", env=env)
    assert said.returncode == 3 and said.stdout.startswith("not running: the status file says protected (pid ")
    assert "no agent answers on its control socket" in said.stdout and "stale or forged" in said.stdout


def test_a_lock_that_fails_is_alerted_and_reported(caplog):
    from agent.responses.result import LockResult
    from agent.watchdog import on_agent_killed

    alerts, reports = [], []
    outcome = on_agent_killed(lambda: LockResult(False, "no locker worked"), lambda t, m: alerts.append(t),
                              lambda *event: reports.append(event), pid=4242)
    assert outcome == "lock failed, alerted" and alerts == ["mouseguard: could not lock the session"]
    assert reports[0][:2] == ("protection_stopped", "not protecting") and "pid 4242" in reports[0][2]
    assert "LOCK FAILED: no locker worked" in caplog.text
