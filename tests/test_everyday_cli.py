"""The small everyday things of issue 20, item 8: progress lines only on a terminal, bad lengths
refused before recording, help texts, `score` defaulting to your model, advice that names this
installation's own Python."""

import io
import os
import pty
import shutil
import subprocess
import sys
import time

import pytest

from agent.cli import build_parser
from agent.enrolment import MIN_ENROL_MINUTES, train_install_hint, training_log


def mg(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_record_into_a_file_writes_no_rewritten_progress_line(xserver, tmp_path):
    # before: "\rrecording ..." hundreds of times into a log file
    out = tmp_path / "rec.csv"
    env = {**os.environ, "DISPLAY": xserver.display, "XDG_SESSION_TYPE": "x11", "MOUSEGUARD_HOME": str(tmp_path / "h")}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "record", "--out", str(out), "--minutes", "0.05"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    for _ in range(3):
        xserver.xdotool(*sum((["mousemove", str(20 + 5 * i), str(30 + 3 * i), "sleep", "0.01"] for i in range(40)), []))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "\r" not in err and err.count("\n") == 2, err
    assert err.startswith(f"recording into {out}") and "events written to" in err


def test_enroll_refuses_too_few_minutes_before_recording(tmp_path):
    # before: --minutes 0.2 recorded, then failed for too little movement
    env = {"MOUSEGUARD_HOME": str(tmp_path), "DISPLAY": "", "XDG_SESSION_TYPE": "x11"}
    proc = mg("enroll", "--minutes", "0.2", env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"--minutes 0.2: an enrolment needs at least {MIN_ENROL_MINUTES:g} minutes" in proc.stderr
    assert not (tmp_path / "data" / "recordings").exists()  # refused before the display check: nothing recorded
    (tmp_path / "config" / "config.toml").write_text("[enrolment]\nminutes = 1\n")  # written by the first run
    proc = mg("enroll", env=env)
    assert proc.returncode == 2 and "enrolment.minutes in " in proc.stderr and "config.toml 1:" in proc.stderr


def test_enroll_counts_the_recordings_already_kept(tmp_path, alice_files):
    kept = tmp_path / "data" / "recordings" / "alice"
    kept.mkdir(parents=True)
    for f in alice_files:  # 3 x 200 s of movement
        shutil.copy(f, kept)
    env = {"MOUSEGUARD_HOME": str(tmp_path), "DISPLAY": "", "XDG_SESSION_TYPE": "x11"}
    proc = mg("enroll", "--user", "alice", "--minutes", "0.2", env=env)
    assert "needs at least" not in proc.stderr and "no X display" in proc.stderr  # past the length check


def test_epoch_lines_one_on_a_terminal_only_the_last_elsewhere():
    # before: 16 "epoch n/16" lines into whatever stderr was
    into_file = io.StringIO()
    log = training_log(into_file)
    for n in range(1, 17):
        log(f"epoch {n}/16: loss {1 / n:.4f}")
    log("model written")
    assert into_file.getvalue() == "epoch 16/16: loss 0.0625\nmodel written\n"

    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        log = training_log(terminal)
        for n in range(1, 4):
            log(f"epoch {n}/3: loss 0.5")
    chunks = []
    while True:  # a pty hands its output over in pieces; all of it is there once the writer closed
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    shown = b"".join(chunks).decode()
    os.close(leader)
    shown = shown.replace("\r\n", "\n")  # the terminal's own line ending
    assert shown.count("\r") == 3 and shown.count("\n") == 1 and shown.endswith("epoch 3/3: loss 0.5\n")


def test_every_command_explains_itself_in_its_help():
    import argparse

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield (*path, name), sub
                    yield from walk(sub, (*path, name))

    missing = [" ".join(path) for path, sub in walk(build_parser(), ()) if not sub.description]
    assert missing == []
    autostart = dict(walk(build_parser(), ()))[("autostart",)].description
    assert "status" in autostart and "show" not in autostart  # the verb is `status`


def test_score_defaults_to_your_model_as_replay_does(tmp_path, synth_model):
    import getpass

    home = tmp_path / "mg"
    shutil.copytree(synth_model, home / "data" / "models" / getpass.getuser())
    demo = os.path.join(os.path.dirname(__file__), "..", "models", "demo", "genuine.csv.gz")
    proc = mg("score", demo, env={"MOUSEGUARD_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "file,blocks,score" and len(proc.stdout.splitlines()) == 2


def test_the_train_advice_names_this_installations_python():
    # before: "pip install 'mouseguard[train]'", which outside the private venv installs elsewhere
    assert train_install_hint().startswith(f"{sys.executable} -m pip install ")
    assert "download.pytorch.org/whl/cpu" in train_install_hint()


@pytest.mark.parametrize("command", [["train", "pretrain", "--data", "x", "--out", "y"]])
def test_training_commands_advice(command, monkeypatch):
    from agent import cli, enrolment

    monkeypatch.setattr(enrolment, "training_available", lambda: False)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert cli.main(command) == 2
    assert f"{sys.executable} -m pip install" in err.getvalue()
