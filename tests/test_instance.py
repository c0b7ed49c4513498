"""One agent at a time: the instance lock, across processes."""

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.instance import AlreadyRunning, InstanceLock, running_pid

REPO = Path(__file__).resolve().parents[1]

TRY_LOCK = """
import sys
from agent.instance import AlreadyRunning, InstanceLock
try:
    with InstanceLock(sys.argv[1]):
        print("acquired", flush=True)
except AlreadyRunning as running:
    print(f"already running {running.pid}", flush=True)
    sys.exit(3)
"""

HOLD_LOCK = """
import sys, time
from agent.instance import InstanceLock
with InstanceLock(sys.argv[1]):
    print("holding", flush=True)
    sys.stdin.readline()
"""


def python(code, *args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, text=True,
                            stdout=subprocess.PIPE, **kwargs)


def test_holder_writes_its_pid_privately(tmp_path):
    path = tmp_path / "state" / "agent.lock"
    with InstanceLock(path) as lock:
        assert lock.held
        assert path.read_text().strip() == str(os.getpid())
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert not lock.held
    assert path.read_text() == ""  # released: no pid left behind to mislead anyone


def test_second_instance_in_a_subprocess_gets_the_first_pid(tmp_path):
    path = tmp_path / "agent.lock"
    with InstanceLock(path):
        child = python(TRY_LOCK, str(path))
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 3
        assert out.strip() == f"already running {os.getpid()}"
    # Once released, the next one gets it.
    child = python(TRY_LOCK, str(path))
    out, _ = child.communicate(timeout=60)
    assert (child.returncode, out.strip()) == (0, "acquired")


def test_lock_held_by_a_subprocess(tmp_path):
    path = tmp_path / "agent.lock"
    child = python(HOLD_LOCK, str(path), stdin=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == "holding"
        with pytest.raises(AlreadyRunning) as running:
            InstanceLock(path).acquire()
        assert running.value.pid == child.pid
        assert str(child.pid) in str(running.value) and "\n" not in str(running.value)
        assert running_pid(path) == child.pid
    finally:
        # A killed holder cannot clean up; the kernel still drops its lock.
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert running_pid(path) is None
    with InstanceLock(path):
        assert path.read_text().strip() == str(os.getpid())


def test_second_lock_in_the_same_process_conflicts(tmp_path):
    path = tmp_path / "agent.lock"
    with InstanceLock(path):
        with pytest.raises(AlreadyRunning) as running:
            with InstanceLock(path):
                pass
        assert running.value.pid == os.getpid()
        assert running.value.path == path


def test_release_is_idempotent_and_lock_reusable(tmp_path):
    path = tmp_path / "agent.lock"
    lock = InstanceLock(path)
    lock.acquire()
    with pytest.raises(RuntimeError):
        lock.acquire()
    lock.release()
    lock.release()
    with lock:
        assert running_pid(path) == os.getpid()
    assert running_pid(path) is None
    assert running_pid(tmp_path / "never.lock") is None
    assert not (tmp_path / "never.lock").exists()
