"""Where mouseguard's files live, and the MOUSEGUARD_HOME override tests and power users rely on."""

import os
import stat
from pathlib import Path

import platformdirs
import pytest

from agent import paths


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_mouseguard_home_moves_every_location(tmp_path):
    env = {"MOUSEGUARD_HOME": str(tmp_path / "mg")}
    home = tmp_path / "mg"
    assert paths.config_file(env) == home / "config" / "config.toml"
    assert paths.models_dir(env) == home / "data" / "models"
    assert paths.user_model_dir("alice", env) == home / "data" / "models" / "alice"
    assert paths.recordings_dir(env) == home / "data" / "recordings"
    assert paths.log_dir(env) == home / "logs"
    assert paths.state_dir(env) == home / "state"
    assert paths.status_file(env) == home / "state" / "status.json"
    assert paths.lock_file(env) == home / "state" / "agent.lock"
    assert all(str(p).startswith(str(home)) for p in paths.all_dirs(env).values())


def test_process_environment_is_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("MOUSEGUARD_HOME", str(tmp_path))
    assert paths.config_file() == tmp_path / "config" / "config.toml"


def test_tilde_in_override_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.state_dir({"MOUSEGUARD_HOME": "~/mg"}) == tmp_path / "mg" / "state"


@pytest.mark.parametrize("env", [{}, {"MOUSEGUARD_HOME": ""}])
def test_without_override_platform_conventions_apply(env):
    assert paths.config_file(env) == Path(platformdirs.user_config_dir("mouseguard", appauthor=False)) / "config.toml"
    assert paths.models_dir(env) == Path(platformdirs.user_data_dir("mouseguard", appauthor=False)) / "models"
    assert paths.log_dir(env) == Path(platformdirs.user_log_dir("mouseguard", appauthor=False))
    assert paths.state_dir(env) == Path(platformdirs.user_state_dir("mouseguard", appauthor=False))


def test_asking_creates_nothing(tmp_path):
    env = {"MOUSEGUARD_HOME": str(tmp_path / "mg")}
    for folder in paths.all_dirs(env).values():
        assert not folder.exists()
    paths.config_file(env), paths.lock_file(env)
    assert not (tmp_path / "mg").exists()


def test_ensure_makes_every_new_folder_private(tmp_path):
    os.chmod(tmp_path, 0o755)
    env = {"MOUSEGUARD_HOME": str(tmp_path / "mg")}
    model = paths.ensure(paths.user_model_dir("alice", env))
    assert model.is_dir()
    # Every folder created on the way is private, so models/ does not list enrolled users...
    for folder in (model, model.parent, model.parent.parent, tmp_path / "mg"):
        assert mode(folder) == 0o700, folder
    # ...and a folder that already existed keeps its mode.
    assert mode(tmp_path) == 0o755
    assert paths.ensure(model) == model  # idempotent


@pytest.mark.parametrize("user", ["", ".", "..", "../bob", "a/b", "a\\b"])
def test_user_model_dir_refuses_paths(user):
    with pytest.raises(ValueError):
        paths.user_model_dir(user, {"MOUSEGUARD_HOME": "/x"})
