"""The managed policy on Windows: ``HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\mouseguard``.

Why the registry and not a file: Windows has no folder that only administrators can write and
every user can read by convention (a file under ProgramData can be created by any user, and
then it is theirs); ``HKLM\\SOFTWARE\\Policies`` is writable only by administrators and SYSTEM,
and it is where Group Policy (an ADMX template, or Group Policy Preferences' registry items)
puts what an administrator decides for a fleet. So trust needs no check of our own here: a value
there was written by an administrator.

The layout mirrors policy.toml: one subkey per section, one value per key, named as in the file
(case does not matter, as in the registry)::

    HKLM\\SOFTWARE\\Policies\\mouseguard\\agent       action = "lock" (REG_SZ), pause_allowed = 0 (REG_DWORD)
    HKLM\\SOFTWARE\\Policies\\mouseguard\\forwarding  syslog = "udp://siem:514" (REG_SZ)

The registry has no booleans or decimals, so a value's type is read by the key it sets: true or
false is a REG_DWORD 0 or 1, a whole number a REG_DWORD (or REG_QWORD), a decimal a REG_SZ
holding it ("0.5"; a whole one may be a REG_DWORD), text a REG_SZ. Everything then goes through
the same checks as the TOML policy (:func:`agent.config.validate_sections`): the same keys, the
same ranges, the same one-line errors, naming the registry key instead of the file.

No key means no policy. ``winreg`` exists only on Windows; :func:`read_policy` takes the module
as a parameter so tests can hand it a fake registry.
"""

from __future__ import annotations

import math
from typing import Any

from agent.config import ConfigError, key_type, validate_sections

#: Under HKEY_LOCAL_MACHINE.
POLICY_KEY = r"SOFTWARE\Policies\mouseguard"
#: How the key is named in status, the log and error messages.
LOCATION = "HKLM\\" + POLICY_KEY


def _type_name(winreg, kind: int) -> str:
    for name in ("REG_SZ", "REG_EXPAND_SZ", "REG_MULTI_SZ", "REG_DWORD", "REG_QWORD", "REG_BINARY", "REG_NONE"):
        if getattr(winreg, name, None) == kind:
            return name
    return f"registry type {kind}"


def _shown(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 60 else text[:57] + "..."


def convert(winreg, section: str, name: str, data: Any, kind: int) -> Any:
    """The TOML value the registry value ``data`` of type ``kind`` stands for; ConfigError if
    its type cannot hold the key's. Range checks are left to the config's own."""
    want = key_type(section, name)
    where = f"{LOCATION}\\{section}: {name}"
    got = f"got {_type_name(winreg, kind)} {_shown(data)}"
    dwords = (winreg.REG_DWORD, getattr(winreg, "REG_QWORD", winreg.REG_DWORD))
    if want is None:
        return data  # an unknown key: validate_sections names it, with its did-you-mean
    if want is bool:
        if kind == winreg.REG_DWORD and data in (0, 1):
            return bool(data)
        raise ConfigError(f"{where}: expected a REG_DWORD 0 (false) or 1 (true), {got}")
    if want is int:
        if kind in dwords and isinstance(data, int):
            return data
        raise ConfigError(f"{where}: expected a whole number as a REG_DWORD, {got}")
    if want is float:
        if kind in dwords and isinstance(data, int):
            return float(data)
        if kind == winreg.REG_SZ and isinstance(data, str):
            try:
                value = float(data.strip())
            except ValueError:
                value = math.nan
            if math.isfinite(value):
                return value
        raise ConfigError(f"{where}: expected a number as a REG_SZ such as \"0.5\" (or a REG_DWORD), {got}")
    if kind == winreg.REG_SZ and isinstance(data, str):
        return data
    raise ConfigError(f"{where}: expected text as a REG_SZ, {got}")


def _values(winreg, key) -> list[tuple[str, Any, int]]:
    return [winreg.EnumValue(key, i) for i in range(winreg.QueryInfoKey(key)[1])]


def read_policy(winreg) -> dict[str, dict[str, Any]] | None:
    """The validated policy (section -> key -> value) under :data:`LOCATION`, or None when the
    key does not exist. Raises ConfigError (one line) for a value that breaks the rules, or a
    key that is there but cannot be read."""
    access = winreg.KEY_READ | getattr(winreg, "KEY_WOW64_64KEY", 0)  # the same key for 32-bit Python
    try:
        root = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, POLICY_KEY, 0, access)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{LOCATION}: cannot read the managed policy: {exc.strerror or exc}") from None
    document: dict[str, dict[str, Any]] = {}
    try:
        with root:
            stray = _values(winreg, root)
            named = [name for name, _, _ in stray if name]  # the (Default) value is left alone
            if named:
                raise ConfigError(f"{LOCATION}: value {named[0]} is not in a section: keys go in a subkey "
                                  f"named after their section, e.g. {LOCATION}\\agent\\action")
            for i in range(winreg.QueryInfoKey(root)[0]):
                section = winreg.EnumKey(root, i)
                with winreg.OpenKey(root, section, 0, access) as sub:
                    if winreg.QueryInfoKey(sub)[0]:
                        raise ConfigError(f"{LOCATION}\\{section}: has subkeys; a section holds values only")
                    table = document.setdefault(section.lower(), {})
                    for name, data, kind in _values(winreg, sub):
                        if not name:
                            continue
                        table[name.lower()] = convert(winreg, section.lower(), name.lower(), data, kind)
    except ConfigError:
        raise
    except OSError as exc:
        raise ConfigError(f"{LOCATION}: cannot read the managed policy: {exc.strerror or exc}") from None
    return validate_sections(document, LOCATION)
