"""Where mouseguard keeps its files.

Each kind of file lives where the OS convention puts it (platformdirs): the config with the
user's configuration, models and recordings with application data, logs with logs, and the
status file and instance lock with per-machine state. Models and recordings describe one
person's behaviour, so every folder is created private (0700) — but only on demand, by
``ensure``: asking where something lives never creates anything.

``MOUSEGUARD_HOME`` moves everything under one folder (``config/``, ``data/``, ``logs/``,
``state/``). Tests use it to stay out of the real home; power users use it to keep a second,
separate agent (another user's model, an experiment) apart from the first.

Every function takes ``env`` (default ``os.environ``) so callers and tests can pass their own
environment instead of mutating the process's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs

from agent.errors import MouseguardError
from agent.files import private_dir

APP_NAME = "mouseguard"
HOME_ENV = "MOUSEGUARD_HOME"

CONFIG_FILE_NAME = "config.toml"
STATUS_FILE_NAME = "status.json"
LOCK_FILE_NAME = "agent.lock"
CONTROL_SOCKET_NAME = "control.sock"


def _home(env: Mapping[str, str] | None) -> Path | None:
    """The ``MOUSEGUARD_HOME`` override, or None. An empty value counts as unset."""
    value = (os.environ if env is None else env).get(HOME_ENV, "")
    return Path(value).expanduser().absolute() if value else None


def _base(kind: str, env: Mapping[str, str] | None) -> Path:
    home = _home(env)
    if home is not None:
        return home / {"config": "config", "data": "data", "log": "logs", "state": "state"}[kind]
    # appauthor=False: without it Windows nests everything under a redundant
    # "mouseguard\mouseguard" (author folder, then app folder).
    lookup = {
        "config": platformdirs.user_config_dir,
        "data": platformdirs.user_data_dir,
        "log": platformdirs.user_log_dir,
        "state": platformdirs.user_state_dir,
    }[kind]
    return Path(lookup(APP_NAME, appauthor=False))


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    return _base("config", env)


def config_file(env: Mapping[str, str] | None = None) -> Path:
    return config_dir(env) / CONFIG_FILE_NAME


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    return _base("data", env)


def models_dir(env: Mapping[str, str] | None = None) -> Path:
    """Folder holding one model folder per user (``models_dir()/<user>``)."""
    return data_dir(env) / "models"


class UserNameError(MouseguardError, ValueError):
    pass


def safe_user_name(user: str) -> str:
    """``user`` as a file or folder name; a path (``../bob``, ``a/b``) would reach outside
    mouseguard's folders (or the shared cohort folder) — ``forget`` erases what it names."""
    if not user or user in (".", "..") or any(sep in user for sep in ("/", "\\", "\0")):
        raise UserNameError(f"not a valid user name: {user!r} (a name, not a path)")
    return user


def user_model_dir(user: str, env: Mapping[str, str] | None = None) -> Path:
    """The model folder of ``user``."""
    return models_dir(env) / safe_user_name(user)


def recordings_dir(env: Mapping[str, str] | None = None) -> Path:
    return data_dir(env) / "recordings"


def user_recordings_dir(user: str, env: Mapping[str, str] | None = None) -> Path:
    """The folder of ``user``'s recordings."""
    return recordings_dir(env) / safe_user_name(user)


def log_dir(env: Mapping[str, str] | None = None) -> Path:
    return _base("log", env)


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    return _base("state", env)


def status_file(env: Mapping[str, str] | None = None) -> Path:
    return state_dir(env) / STATUS_FILE_NAME


def lock_file(env: Mapping[str, str] | None = None) -> Path:
    return state_dir(env) / LOCK_FILE_NAME


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the agent's control socket lives (``mouseguard pause|resume|stop``).

    ``$XDG_RUNTIME_DIR/mouseguard``: logind makes that folder private to the user and empties it
    at logout. Without it, the private state folder: platformdirs' own fallback,
    ``/tmp/runtime-<uid>``, is a name another account could create first.
    """
    home = _home(env)
    if home is not None:
        return home / "run"
    runtime = (os.environ if env is None else env).get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / APP_NAME
    return state_dir(env)


def control_socket(env: Mapping[str, str] | None = None) -> Path:
    return runtime_dir(env) / CONTROL_SOCKET_NAME


def all_dirs(env: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Every folder mouseguard may write, by role (the uninstaller lists or purges these)."""
    return {
        "config": config_dir(env),
        "models": models_dir(env),
        "recordings": recordings_dir(env),
        "data": data_dir(env),
        "logs": log_dir(env),
        "state": state_dir(env),
    }


def ensure(path: str | os.PathLike) -> Path:
    """Create folder ``path`` on demand, private (0700).

    Every folder this call creates is made private, not only the leaf: ``models/`` created as a
    side effect of ``models/<user>`` would otherwise be world-listable and name the enrolled
    users. Folders that already exist above it (``~/.local/share``) keep their mode.
    """
    path = Path(path).absolute()
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        private_dir(folder)
    return private_dir(path)
