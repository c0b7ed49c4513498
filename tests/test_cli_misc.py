"""The small commands: autostart, forget, status, config errors, --help."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def mg(*args, env=None, input=None):
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=input, timeout=120)


def test_help_and_wrong_argument():
    assert mg("--help").returncode == 0
    bad = mg("run", "--action", "explode")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_autostart_enable_status_disable(tmp_path):
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    assert "disabled" in mg("autostart", "status", env=env).stdout
    on = mg("autostart", "enable", env=env)
    assert on.returncode == 0 and "enabled" in on.stdout
    desktop = tmp_path / "cfg" / "autostart" / "mouseguard.desktop"
    assert desktop.exists() and "-m agent run" in desktop.read_text()
    assert mg("autostart", "enable", env=env).returncode == 0  # idempotent
    assert "enabled" in mg("autostart", "status", env=env).stdout
    assert mg("autostart", "disable", env=env).returncode == 0 and not desktop.exists()


def test_forget_asks_and_erases(tmp_path):
    env = {"MOUSEGUARD_HOME": str(tmp_path)}
    model = tmp_path / "data" / "models" / "ann"
    rec = tmp_path / "data" / "recordings" / "ann"
    for d in (model, rec):
        d.mkdir(parents=True)
        (d / "x").write_text("x")
    refused = mg("forget", "--user", "ann", env=env, input="")
    assert refused.returncode == 2 and "--yes" in refused.stderr and model.exists()
    done = mg("forget", "--user", "ann", "--yes", env=env)
    assert done.returncode == 0 and not model.exists() and not rec.exists()
    assert "nothing stored" in mg("forget", "--user", "ann", "--yes", env=env).stdout


@pytest.mark.parametrize("command", [["forget", "--yes"], ["enroll", "--from", "/nonexistent.csv"]])
@pytest.mark.parametrize("user", ["../..", "a/b", "."])
def test_a_path_as_user_name_is_refused(tmp_path, command, user):
    env = {"MOUSEGUARD_HOME": str(tmp_path / "mg")}
    keep = tmp_path / "keep.txt"
    keep.write_text("x")
    proc = mg(*command, "--user", user, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a valid user name" in proc.stderr, proc.stderr
    assert keep.exists()


def test_full_disk_under_stdout_is_one_line(synth_model):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "agent", "score", "--model", str(synth_model),
                               str(ROOT / "models" / "demo" / "genuine.csv.gz")],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "No space left" in proc.stderr, proc.stderr


def test_argument_errors_are_one_line():
    proc = mg("train", "fit", "--epochs", "abc")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "usage:" not in proc.stderr
    assert "--epochs" in proc.stderr and "mouseguard train fit --help" in proc.stderr


def test_status_not_running(tmp_path):
    out = mg("status", env={"MOUSEGUARD_HOME": str(tmp_path)})
    assert out.returncode == 3 and "not running" in out.stdout  # 3: not running (status --help)
    as_json = mg("status", "--json", env={"MOUSEGUARD_HOME": str(tmp_path)})
    import json

    report = json.loads(as_json.stdout)
    assert as_json.returncode == 3 and report["running"] is False and report["exit_code"] == 3
    assert report["summary"].startswith("not running") and report["log"].endswith("mouseguard.log")


@pytest.mark.parametrize("toml, fragment", [
    ('[decision]\nthreshold = 1.5\n', "decision.threshold"),
    ('[agent]\naction = "explode"\n', "agent.action"),
    ('[agent\n', "TOML syntax error"),
])
def test_bad_config_is_one_line(tmp_path, toml, fragment, synth_model):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text(toml)
    out = mg("replay", str(synth_model / "manifest.json"), env={"MOUSEGUARD_HOME": str(tmp_path)})
    assert out.returncode == 2 and fragment in out.stderr and out.stderr.count("\n") == 1


@pytest.mark.parametrize("env, says", [
    ({"DISPLAY": "", "WAYLAND_DISPLAY": "", "XDG_SESSION_TYPE": "x11"}, "no X display"),
    ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, "Wayland gives applications no global mouse hook"),
    ({"DISPLAY": ":97", "XDG_SESSION_TYPE": "x11"}, "cannot connect to the X display ':97'"),
])
@pytest.mark.parametrize("command", [["run", "--no-tray"], ["record", "--out", "r.csv"], ["enroll", "--minutes", "5"]])
def test_watching_commands_refuse_at_once_what_they_cannot_watch(tmp_path, env, says, command):
    # before: run sat "not protecting", record and enroll said it in pynput's words (a tuple's repr)
    proc = mg(*command, env={**env, "MOUSEGUARD_HOME": str(tmp_path)})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
