"""Shared fixtures.

``xserver``: a real Xvfb (one per test session: starting one costs about half a second) with
``DISPLAY`` pointing at it for the duration of one test only, so tests that need *no* display
are not affected by tests that ran before them. Missing Xvfb/xdotool is a failure, not a skip:
CI installs them, and a silently skipped capture test would hide a broken hook.
"""

from __future__ import annotations

import pytest

from benchmarks.xserver import XServer, XServerError


@pytest.fixture(scope="session")
def xserver_session():
    server = XServer()
    problem = None
    try:
        server.start()
    except XServerError as exc:
        problem = str(exc)
    if problem:  # outside the except block, so the report is the one line, not a chain
        pytest.fail(problem, pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def xserver(xserver_session, monkeypatch):
    """The session's X server, with ``DISPLAY`` set for this test."""
    if not xserver_session.alive:
        pytest.fail(f"the test X server has died: {xserver_session.log_tail()}", pytrace=False)
    monkeypatch.setenv("DISPLAY", xserver_session.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    return xserver_session


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory):
    """Three generated users, three recordings each, as a ``recording`` data set folder."""
    from agent.recordings import write_recording
    from tests.synth import synth_events

    root = tmp_path_factory.mktemp("recordings")
    for u, user in enumerate(("alice", "bob", "carol")):
        for k in range(3):
            seconds = 300 if user == "alice" else 150  # enough of the genuine user to calibrate on
            write_recording(root / user / f"s{k}.csv", synth_events(user, seconds=seconds, seed=10 * u + k))
    return root


@pytest.fixture(scope="session")
def synth_model(synth_dataset, tmp_path_factory):
    """alice's model, trained and exported by the real ``mouseguard train fit``."""
    from agent.cli import main

    out = tmp_path_factory.mktemp("models") / "alice"
    rc = main(["train", "fit", "--dataset", "recording", "--data", str(synth_dataset), "--user", "alice",
               "--out", str(out), "--epochs", "3"])
    assert rc == 0
    return out


@pytest.fixture
def mouseguard_home(tmp_path, monkeypatch):
    """A private MOUSEGUARD_HOME: config, models, recordings, logs and state under tmp_path."""
    home = tmp_path / "home"
    monkeypatch.setenv("MOUSEGUARD_HOME", str(home))
    return home


@pytest.fixture
def alice_files(tmp_path):
    """Three generated recordings of alice, as `enroll --from` takes them."""
    from agent.recordings import write_recording
    from tests.synth import synth_events

    files = []
    for k in range(3):
        files.append(tmp_path / f"alice{k}.csv.gz")
        write_recording(files[-1], synth_events("alice", seconds=200, seed=400 + k))
    return files


@pytest.fixture(scope="session")
def secret_service(tmp_path_factory):
    """A real Secret Service (gnome-keyring on a private DBus session bus), unlocked, for the
    sealed recordings (agent/sealing.py): the environment a process needs to reach it. Missing
    binaries are a failure, not a skip: CI installs them."""
    import os
    import shutil
    import subprocess
    import sys
    import time

    for tool, package in (("dbus-daemon", "dbus-daemon"), ("gnome-keyring-daemon", "gnome-keyring")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {package}", pytrace=False)
    home = tmp_path_factory.mktemp("keyring-home")
    runtime = home / "run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    address = bus.stdout.readline().strip()
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    daemon.stdin.write(b"test-password")  # the login keyring's password: it is created unlocked
    daemon.stdin.close()
    # keyring settles on a backend at its first call: ask only once the service is on the bus
    probe = [sys.executable, "-c", "import keyring; keyring.get_password('mouseguard-test', 'probe')"]
    deadline = time.monotonic() + 20
    while subprocess.run(probe, env=env, capture_output=True).returncode != 0:
        if time.monotonic() > deadline or daemon.poll() is not None:
            daemon.kill()
            bus.kill()
            pytest.fail("the test Secret Service (gnome-keyring-daemon) did not come up within 20 s", pytrace=False)
        time.sleep(0.2)
    try:
        yield {"DBUS_SESSION_BUS_ADDRESS": address}
    finally:
        for proc in (daemon, bus):
            proc.terminate()
            proc.wait(5)


@pytest.fixture
def keyring_env(secret_service, monkeypatch):
    """This test's process (and its children) use the test Secret Service."""
    from agent import sealing

    for name, value in secret_service.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sealing, "_found", False)  # keyring chooses its backend afresh
    return secret_service
