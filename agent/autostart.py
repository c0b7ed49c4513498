"""Start the agent at login: XDG autostart (Linux/BSD), a LaunchAgent (macOS), HKCU Run (Windows).

Stdlib only, like ActivityWatch's aw-qt autostart: the installer calls this through
``mouseguard autostart enable`` before anything else of the agent has to work. ``enable``,
``disable`` and ``status`` are idempotent, every failure is an ``AutostartError`` with one
line, and each OS's code runs anywhere (``platform=``, ``home=``, ``env=``, ``registry=``)
so the tests cover all three on one machine.

Why XDG autostart and not only a systemd user service on Linux: a user service runs outside
the graphical session — no ``XDG_SESSION_ID``, often no ``DISPLAY``/``WAYLAND_DISPLAY`` and a
different DBus environment — and ``loginctl lock-session`` from there may silently do
nothing. An XDG autostart entry is started by the session itself and inherits all of it, so
locking, the tray and the pynput hook see the session the user is sitting at. Where a systemd
user manager runs, the entry hands that session environment to it and starts a user service
with ``Restart=on-failure`` (issue 19: nobody kills the agent quietly — the watchdog locks, and
systemd starts it again); elsewhere the entry runs the agent itself.
"""

from __future__ import annotations

import configparser
import ntpath
import os
import plistlib
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.errors import MouseguardError
from agent.files import atomic_write_bytes, atomic_write_text

DESKTOP_FILE_NAME = "mouseguard.desktop"
SERVICE_FILE_NAME = "mouseguard.service"
#: What the user manager needs from the session for the agent to hook, lock and notify there.
SESSION_ENVIRONMENT = ("DISPLAY", "XAUTHORITY", "WAYLAND_DISPLAY", "XDG_SESSION_ID", "XDG_SESSION_TYPE",
                       "XDG_CURRENT_DESKTOP", "DBUS_SESSION_BUS_ADDRESS")
LAUNCH_AGENT_LABEL = "io.github.mouseguard.agent"
WINDOWS_RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
WINDOWS_VALUE_NAME = "mouseguard"


class AutostartError(MouseguardError):
    """Autostart could not be read or changed; the message is one line."""


@dataclass(frozen=True)
class AutostartStatus:
    """Whether the agent starts at login; truthy when it does."""

    enabled: bool
    location: str  # the file or registry value that decides it
    command: str = ""  # what starts at login, as written there ("" when nothing does)
    note: str = ""  # why an existing entry does not count, when it does not

    def __bool__(self) -> bool:
        return self.enabled

    def __str__(self) -> str:
        if self.enabled:
            return f"enabled: {self.location} starts {self.command}"
        return f"disabled ({self.note})" if self.note else f"disabled (no {self.location})"


class RunKey(Protocol):
    """The seam around the Windows registry: the values of one key, by name."""

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None:  # a missing value is not an error
        ...


def default_command(platform: str | None = None, executable: str | None = None) -> list[str]:
    """The command autostart should run: this interpreter running ``mouseguard run``.

    The interpreter's absolute path, not the ``mouseguard`` script found on PATH: at login
    PATH is often the bare system one, without ``~/.local/bin``, and the absolute path pins
    the installed venv.
    """
    executable = executable or sys.executable
    if (platform or sys.platform) == "win32":
        executable = _windowless(executable)
    return [executable, "-m", "agent", "run"]


def enable(
    command: Sequence[str],
    *,
    platform: str | None = None,
    home: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    registry: RunKey | None = None,
) -> AutostartStatus:
    """Start ``command`` at every login (replacing any earlier entry); return the new status."""
    command = [os.fspath(part) for part in command]
    if not command or not command[0]:
        raise AutostartError("autostart needs a command to run")
    backend = _backend(platform, home, env, registry)
    backend.enable(command)
    return backend.status()


def disable(
    *,
    platform: str | None = None,
    home: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    registry: RunKey | None = None,
) -> bool:
    """Stop starting at login; True when an entry was removed, False when there was none."""
    return _backend(platform, home, env, registry).disable()


def status(
    *,
    platform: str | None = None,
    home: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    registry: RunKey | None = None,
) -> AutostartStatus:
    """Whether (and what) the agent starts at login."""
    return _backend(platform, home, env, registry).status()


def _backend(platform, home, env, registry):
    platform = platform or sys.platform
    env = os.environ if env is None else env
    if platform == "win32":
        return _WindowsRun(registry if registry is not None else WinregRunKey())
    home = Path(home) if home is not None else Path(env.get("HOME") or Path.home())
    if platform == "darwin":
        return _LaunchAgent(home / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT_LABEL}.plist")
    # Linux and the BSDs: every freedesktop session (GNOME, KDE, Xfce, ...) reads XDG autostart.
    config_home = env.get("XDG_CONFIG_HOME", "")
    # The base-directory spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    base = Path(config_home) if os.path.isabs(config_home) else home / ".config"
    return _XdgAutostart(base / "autostart" / DESKTOP_FILE_NAME, base / "systemd" / "user" / SERVICE_FILE_NAME,
                         systemd_user_available(env))


def systemd_user_available(env: Mapping[str, str]) -> bool:
    """A systemd user manager runs for this user (its private socket is in the runtime folder)."""
    runtime = env.get("XDG_RUNTIME_DIR", "")
    return os.path.isabs(runtime) and os.path.exists(os.path.join(runtime, "systemd", "private"))


def service_unit(command: Sequence[str]) -> str:
    """The user service: restarted when it dies other than by an exit 0 (a kill -9 included)."""
    return "\n".join([
        "[Unit]",
        "Description=mouseguard: locks the session when someone else is at the mouse",
        "PartOf=graphical-session.target",
        "After=graphical-session.target",
        "",
        "[Service]",
        f"ExecStart={shlex.join(command)}",
        "Restart=on-failure",
        "RestartSec=2",
        "RestartPreventExitStatus=2",  # a refusal (Wayland, a bad config) is said once, not every 2 s
        "",
    ])


def session_start_command() -> list[str]:
    """What the desktop entry runs with systemd: the session's environment to the user manager,
    then the service (restart: a second login replaces the agent of the first)."""
    return ["/bin/sh", "-c", f"systemctl --user import-environment {' '.join(SESSION_ENVIRONMENT)}; "
                             f"exec systemctl --user restart {SERVICE_FILE_NAME}"]


def _write(path: Path, payload: bytes | str) -> None:
    try:
        # Plain mkdir, not a private one: ~/.config/autostart and ~/Library/LaunchAgents are
        # shared with other programs and keep whatever mode they have.
        path.parent.mkdir(parents=True, exist_ok=True)
        (atomic_write_text if isinstance(payload, str) else atomic_write_bytes)(path, payload)
    except OSError as exc:
        raise AutostartError(f"cannot write {path}: {exc.strerror or exc}") from None


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise AutostartError(f"cannot remove {path}: {exc.strerror or exc}") from None
    return True


# -------------------------------------------------------------------------- Linux: XDG entry

# Characters that force an Exec argument into double quotes (Desktop Entry spec, "The Exec key").
_EXEC_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")


def desktop_exec(command: Sequence[str]) -> str:
    """``command`` as the value of an ``Exec=`` line, escaped as it is written in the file.

    Two layers, in the spec's order: each argument is quoted for Exec (``"`` `` ` `` ``$``
    ``\\`` backslashed inside double quotes, ``%`` doubled since it starts field codes), then
    the whole value is escaped as a desktop-file string, which doubles every backslash again.
    """
    words = []
    for arg in command:
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in arg):
            raise AutostartError(f"cannot autostart a command with control characters in it: {arg!r}")
        if arg == "" or any(char in _EXEC_RESERVED for char in arg):
            arg = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
        words.append(arg.replace("%", "%%"))
    return " ".join(words).replace("\\", "\\\\")


def parse_desktop_exec(value: str) -> list[str]:
    """The inverse of ``desktop_exec``: the argument list an ``Exec=`` value (from the file) runs.

    Field codes (``%f``, ``%u``, ...) expand to nothing for an autostarted program, so they are
    dropped; ``%%`` is a literal ``%``.
    """
    value = re.sub(r"\\(.)", lambda m: {"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), value)
    args: list[str] = []
    current: list[str] | None = None  # None between arguments; [] is an empty ("") argument
    quoted = False
    i = 0
    while i < len(value):
        char = value[i]
        nxt = value[i + 1] if i + 1 < len(value) else ""
        if not quoted and char in " \t\n":
            if current is not None:
                args.append("".join(current))
                current = None
            i += 1
            continue
        fresh, current = current is None, [] if current is None else current
        if quoted and char == "\\" and nxt in ('"', "`", "$", "\\"):
            current.append(nxt)
            i += 1
        elif char == '"':
            quoted = not quoted
        elif char == "%":
            if nxt == "%":
                current.append("%")
            elif fresh:
                current = None  # a field code (%f, %u, ...) expands to nothing at login
            i += 1
        else:
            current.append(char)
        i += 1
    if quoted:
        raise AutostartError(f"unterminated quote in Exec value: {value!r}")
    if current is not None:
        args.append("".join(current))
    return args


def _desktop_entry(command: Sequence[str]) -> str:
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            "Version=1.0",
            "Name=mouseguard",
            "Comment=Locks the session when someone else is at the mouse",
            f"Exec={desktop_exec(command)}",
            "Terminal=false",
            # GNOME's (and Cinnamon's, MATE's) own switch; the user's "off" there wins until the
            # next explicit enable rewrites it.
            "X-GNOME-Autostart-enabled=true",
            # KDE: start once the panel exists, or the tray icon has nowhere to dock.
            "X-KDE-autostart-after=panel",
            "",
        ]
    )


@dataclass(frozen=True)
class _XdgAutostart:
    path: Path
    unit: Path | None = None
    systemd: bool = False

    def enable(self, command: list[str]) -> None:
        if not self.systemd:
            _write(self.path, _desktop_entry(command))
            if self.unit is not None:
                _remove(self.unit)
            return
        _write(self.unit, service_unit(command))
        _write(self.path, _desktop_entry(session_start_command()))
        try:  # the manager may have read an older unit; the next login reads it anyway
            subprocess.run(["systemctl", "--user", "daemon-reload"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            pass

    def disable(self) -> bool:
        removed = _remove(self.path)
        return (_remove(self.unit) if self.unit is not None else False) or removed

    def status(self) -> AutostartStatus:
        found = self._entry_status()
        if not found or found.command != shlex.join(session_start_command()):
            return found
        location = f"{self.path} + {self.unit}"
        try:
            execs = [line.split("=", 1)[1] for line in self.unit.read_text(encoding="utf-8").splitlines()
                     if line.startswith("ExecStart=")]
        except (OSError, UnicodeDecodeError) as exc:
            return AutostartStatus(False, location, note=f"{self.unit} cannot be read: {exc}")
        if not execs:
            return AutostartStatus(False, location, note=f"{self.unit} has no ExecStart line")
        return AutostartStatus(True, location, f"{execs[0]} (systemd user service, Restart=on-failure)")

    def _entry_status(self) -> AutostartStatus:
        if not self.path.exists():
            return AutostartStatus(False, str(self.path))
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # keys are case-sensitive in desktop entries
        try:
            parser.read_string(self.path.read_text(encoding="utf-8"))
            entry = parser["Desktop Entry"]
            command = entry.get("Exec", "")
        except (OSError, UnicodeDecodeError, configparser.Error, KeyError) as exc:
            note = f"{self.path} cannot be read: {str(exc).splitlines()[0]}"
            return AutostartStatus(False, str(self.path), note=note)
        shown = shlex.join(parse_desktop_exec(command)) if command else ""
        if entry.get("Hidden", "false").strip().lower() == "true":
            return AutostartStatus(False, str(self.path), shown, f"{self.path} is marked Hidden")
        if entry.get("X-GNOME-Autostart-enabled", "true").strip().lower() == "false":
            note = f"{self.path} is switched off in the desktop's startup settings"
            return AutostartStatus(False, str(self.path), shown, note)
        if not command:
            return AutostartStatus(False, str(self.path), note=f"{self.path} has no Exec line")
        return AutostartStatus(True, str(self.path), shown)


# ------------------------------------------------------------------------ macOS: LaunchAgent


@dataclass(frozen=True)
class _LaunchAgent:
    path: Path

    def enable(self, command: list[str]) -> None:
        agent = {
            "Label": LAUNCH_AGENT_LABEL,
            "ProgramArguments": command,
            "RunAtLoad": True,
            # No relaunch: quitting from the tray must stay quit, and a crashing agent must not
            # loop; a dead agent shows as "not running" in `mouseguard status` instead.
            "KeepAlive": False,
            # Only in a GUI login, not an SSH one: the hook, the tray and the lock need the
            # window server. "Interactive" keeps launchd from throttling the hook's process.
            "LimitLoadToSessionType": "Aqua",
            "ProcessType": "Interactive",
        }
        _write(self.path, plistlib.dumps(agent, fmt=plistlib.FMT_XML))

    def disable(self) -> bool:
        # Removing the plist stops it from loading at the next login; an agent already running
        # keeps running until it quits (the tray's Quit, or logout).
        return _remove(self.path)

    def status(self) -> AutostartStatus:
        if not self.path.exists():
            return AutostartStatus(False, str(self.path))
        try:
            agent = plistlib.loads(self.path.read_bytes())
            arguments = agent.get("ProgramArguments") or []
            shown = shlex.join(str(a) for a in arguments)
        except (OSError, plistlib.InvalidFileException, ValueError, AttributeError) as exc:
            return AutostartStatus(False, str(self.path), note=f"{self.path} cannot be read: {exc}")
        if agent.get("Disabled") is True:
            return AutostartStatus(False, str(self.path), shown, f"{self.path} is marked Disabled")
        if not agent.get("RunAtLoad") or not arguments:
            return AutostartStatus(False, str(self.path), shown, f"{self.path} does not run at login")
        return AutostartStatus(True, str(self.path), shown)


# ---------------------------------------------------------------------- Windows: HKCU\...\Run


def _windowless(executable: str) -> str:
    """python.exe -> pythonw.exe beside it: a Run entry with python.exe opens a console window
    at every login, and closing that window would kill the agent."""
    folder, name = ntpath.split(executable)
    if name.lower() == "python.exe":
        return ntpath.join(folder, "pythonw.exe")
    return executable


class WinregRunKey:
    """``HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run`` through winreg.

    Per-user, so no administrator rights. (Task Manager's "Disable" for startup apps is kept
    elsewhere, under ``StartupApproved``, and is not seen here.)
    """

    def get(self, name: str) -> str | None:
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, WINDOWS_RUN_KEY, 0, winreg.KEY_READ) as key:
                value, _kind = winreg.QueryValueEx(key, name)
        except FileNotFoundError:
            return None
        return str(value)

    def set(self, name: str, value: str) -> None:
        import winreg

        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, WINDOWS_RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
            winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)

    def delete(self, name: str) -> None:
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, WINDOWS_RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
                winreg.DeleteValue(key, name)
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class _WindowsRun:
    registry: RunKey
    location: str = f"HKCU\\{WINDOWS_RUN_KEY}\\{WINDOWS_VALUE_NAME}"

    def enable(self, command: list[str]) -> None:
        command = [_windowless(command[0]), *command[1:]]
        # list2cmdline writes the quoting that CommandLineToArgvW / the MS C runtime undo.
        self._call("write", self.registry.set, WINDOWS_VALUE_NAME, subprocess.list2cmdline(command))

    def disable(self) -> bool:
        if self._call("read", self.registry.get, WINDOWS_VALUE_NAME) is None:
            return False
        self._call("remove", self.registry.delete, WINDOWS_VALUE_NAME)
        return True

    def status(self) -> AutostartStatus:
        value = self._call("read", self.registry.get, WINDOWS_VALUE_NAME)
        if not value:
            return AutostartStatus(False, self.location)
        return AutostartStatus(True, self.location, value)

    def _call(self, verb, method, *args):
        try:
            return method(*args)
        except OSError as exc:
            raise AutostartError(f"cannot {verb} {self.location}: {exc.strerror or exc}") from None
