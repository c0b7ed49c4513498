"""The small commands: autostart, forget, status, config errors, --help."""

import os
import subprocess
import sys

import pytest


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


def test_status_not_running(tmp_path):
    out = mg("status", env={"MOUSEGUARD_HOME": str(tmp_path)})
    assert out.returncode == 0 and "not running" in out.stdout


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
