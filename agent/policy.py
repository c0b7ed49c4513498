"""The managed policy: a system-wide file an administrator writes and the user cannot change.

Its keys are the user configuration's keys (same sections, names, types and checks); every key
it sets replaces the user's value and is *locked*: the user's config.toml and command-line flags
cannot change it. A user setting that differs gets one line in the log and in
``mouseguard status``, not an error: the agent runs, with the administrator's value.

Where: ``/etc/mouseguard/policy.toml`` on Linux and macOS; on Windows the registry,
``HKLM\\SOFTWARE\\Policies\\mouseguard`` (:mod:`agent.registry_policy`: where Group Policy writes,
and a file under ProgramData could be created by any user). Both are held to the same keys and
checks and give the same :class:`Policy`.

Trust: a locked key is only locked if the user cannot edit the file. So the file, and every
folder above it, must be owned by root and writable by nobody else (no group or other write
bit; a world-writable folder with the sticky bit, such as /tmp, is accepted because only the
owner of an entry may rename or remove it). Otherwise the file is **ignored** — applying it
would let whoever can write it set ``action = "log"`` or a webhook of theirs for every account
of the machine — and the log and status say why.

``MOUSEGUARD_POLICY_FILE`` names another file, for tests (which cannot write /etc or chown to
root) and for trying a policy out. It is read only when there is no system policy file, so it
cannot replace an administrator's policy; and as the user's own file it skips the ownership
check: it can only lock the settings of the one who set it.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import Config, ConfigError, _toml_string, parse_sections

POLICY_ENV = "MOUSEGUARD_POLICY_FILE"
SYSTEM_POLICY = Path("/etc/mouseguard/policy.toml")


@dataclass(frozen=True)
class Policy:
    path: Path | str | None = None  # the file the values came from (or that was ignored); on Windows the registry key
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # section -> key -> value
    ignored: str = ""  # why a file that exists was not applied
    from_env: bool = False  # read from MOUSEGUARD_POLICY_FILE

    @property
    def locked(self) -> tuple[str, ...]:
        """``section.key`` of every locked key."""
        return tuple(f"{s}.{k}" for s, keys in self.values.items() for k in keys)

    def describe(self) -> list[str]:
        """Lines for ``mouseguard status`` and the log ([] when there is no policy)."""
        if self.path is None:
            return []
        if self.ignored:
            return [f"managed policy {self.path}: IGNORED ({self.ignored})"]
        kind = " (MOUSEGUARD_POLICY_FILE, a test policy)" if self.from_env else ""
        if not self.locked:
            return [f"managed policy {self.path}{kind}: locks nothing"]
        return [f"managed policy {self.path}{kind} locks: " + ", ".join(
            f"{key} = {_show(value, key)}" for key, value in self._items())]

    def _items(self):
        for section, keys in self.values.items():
            for key, value in keys.items():
                yield f"{section}.{key}", value


def policy_file(env: Mapping[str, str] | None = None, system: Path = SYSTEM_POLICY) -> tuple[Path, bool]:
    """(the policy file to read, whether it came from MOUSEGUARD_POLICY_FILE)."""
    value = (os.environ if env is None else env).get(POLICY_ENV, "")
    if value and not os.path.lexists(system):
        return Path(value).expanduser().absolute(), True
    return system, False


def load_policy(env: Mapping[str, str] | None = None, system: Path = SYSTEM_POLICY, *,
                platform: str = sys.platform, registry=None) -> Policy:
    """The policy in force. A file that is there but broken (syntax, unknown key, bad value)
    raises ConfigError naming it: the agent stops as it does on a broken config.toml, rather
    than run without the administrator's settings. On Windows (``platform``) the policy is the
    registry key, read through ``registry`` (the ``winreg`` module; tests pass a fake), and
    MOUSEGUARD_POLICY_FILE is read only when that key does not exist."""
    if platform == "win32":
        from agent import registry_policy

        if registry is None:
            import winreg as registry
        values = registry_policy.read_policy(registry)
        if values is not None:
            return Policy(registry_policy.LOCATION, values)
        value = (os.environ if env is None else env).get(POLICY_ENV, "")
        return _read_file(Path(value).expanduser().absolute(), True) if value else Policy()
    path, from_env = policy_file(env, system)
    if not os.path.lexists(path):
        return Policy()
    if not from_env:
        problem = trust_problem(path)
        if problem:
            return Policy(path, {}, problem)
    return _read_file(path, from_env)


def _read_file(path: Path, from_env: bool) -> Policy:
    if not os.path.lexists(path):
        return Policy()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the managed policy: {exc.strerror or exc}") from None
    return Policy(path, parse_sections(raw, path), "", from_env)


def trust_problem(path: Path, admins: tuple[int, ...] = (0,)) -> str:
    """Why ``path`` cannot be trusted as a policy ("" when it can): it and every folder above
    it must be owned by one of ``admins`` (root) and not writable by group or others (a sticky
    folder excepted). ``admins`` is a parameter so tests, which cannot chown to root, can run
    the same check with their own uid as the administrator."""
    try:
        real = Path(os.path.realpath(path))
        chain = [real, *real.parents]
        for item in chain:
            st = os.stat(item)
            if st.st_uid not in admins:
                return f"{item} is owned by uid {st.st_uid}, not by root: its owner could change the policy"
            writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            sticky = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
            if writable and not sticky:
                return f"{item} is writable by {'others' if st.st_mode & stat.S_IWOTH else 'its group'}"
        if not stat.S_ISREG(os.stat(real).st_mode):
            return f"{real} is not a regular file"
    except OSError as exc:
        return f"cannot check {path}: {exc.strerror or exc}"
    return ""


def enforce(config: Config, policy: Policy) -> tuple[Config, list[str]]:
    """``config`` with the policy's values in place, and one note per user setting replaced."""
    notes = []
    changes = {}
    for section, keys in policy.values.items():
        current = getattr(config, section)
        for key, value in keys.items():
            mine = getattr(current, key)
            if mine != value:
                notes.append(f"{section}.{key} is locked to {_show(value, key)} by the managed policy "
                             f"{policy.path}; your setting {_show(mine, key)} is ignored")
        changes[section] = dataclasses.replace(current, **keys)
    return dataclasses.replace(config, **changes), notes


#: Keys whose values are secrets: status and the log show that they are set, not what they are.
SECRET_KEYS = ("webhook_authorization",)


def _show(value: Any, key: str = "") -> str:
    if key.rsplit(".", 1)[-1] in SECRET_KEYS:
        return '"(hidden)"' if value else '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    return f"{value:g}" if isinstance(value, float) else str(value)
