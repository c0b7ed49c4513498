"""Autostart on all three OSes, each in a temporary home (and a fake registry for Windows)."""

import configparser
import os
import plistlib
import shlex
import stat
import subprocess

import pytest

from agent import autostart
from agent.autostart import AutostartError, desktop_exec, parse_desktop_exec

COMMAND = ["/home/al ice/.local/share/mouseguard/venv/bin/python", "-m", "agent", "run"]


class FakeRunKey:
    """The registry seam, backed by a dict: the values of HKCU\\...\\Run."""

    def __init__(self):
        self.values = {}

    def get(self, name):
        return self.values.get(name)

    def set(self, name, value):
        self.values[name] = value

    def delete(self, name):
        self.values.pop(name, None)


class BrokenRunKey(FakeRunKey):
    def set(self, name, value):
        raise PermissionError(13, "Access is denied")


# ------------------------------------------------------------------------------------ Linux


@pytest.fixture
def xdg(tmp_path):
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    return dict(platform="linux", home=home, env=env), tmp_path / "xdg" / "autostart" / "mouseguard.desktop"


def read_desktop(path):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def test_linux_enable_twice_is_one_entry(xdg):
    where, path = xdg
    autostart.enable(COMMAND, **where)
    state = autostart.enable(COMMAND, **where)
    assert state and state.enabled
    assert os.listdir(path.parent) == ["mouseguard.desktop"]
    entry = read_desktop(path)
    assert entry["Type"] == "Application"
    assert entry["Name"] == "mouseguard"
    assert entry["X-GNOME-Autostart-enabled"] == "true"
    assert entry["Terminal"] == "false"
    assert parse_desktop_exec(entry["Exec"]) == COMMAND
    assert entry["Exec"].startswith('"/home/al ice/')  # the space forces quotes
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_linux_status_and_disable_twice(xdg):
    where, path = xdg
    assert not autostart.status(**where)
    autostart.enable(COMMAND, **where)
    state = autostart.status(**where)
    assert state.enabled and state.location == str(path)
    assert "/home/al ice/" in state.command and str(path) in str(state)
    assert autostart.disable(**where) is True
    assert autostart.disable(**where) is False
    assert not path.exists()
    assert not autostart.status(**where)
    assert str(autostart.status(**where)).startswith("disabled")


def test_linux_switched_off_in_the_desktop_then_enabled_again(xdg):
    where, path = xdg
    autostart.enable(COMMAND, **where)
    path.write_text(path.read_text().replace("X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false"))
    state = autostart.status(**where)
    assert not state and "switched off" in state.note
    assert autostart.enable(COMMAND, **where)
    path.write_text(path.read_text() + "Hidden=true\n")
    assert not autostart.status(**where)


def test_linux_unreadable_entry_is_reported_not_raised(xdg):
    where, path = xdg
    path.parent.mkdir(parents=True)
    path.write_text("not a desktop entry at all\n")
    state = autostart.status(**where)
    assert not state and "cannot be read" in state.note


@pytest.mark.parametrize("xdg_config_home", [None, "", "relative/dir"])
def test_linux_xdg_config_home_fallback(tmp_path, xdg_config_home):
    env = {"HOME": str(tmp_path)}
    if xdg_config_home is not None:
        env["XDG_CONFIG_HOME"] = xdg_config_home  # a relative value is invalid per the spec
    autostart.enable(COMMAND, platform="linux", env=env)
    assert (tmp_path / ".config" / "autostart" / "mouseguard.desktop").is_file()


def test_bsd_uses_xdg_too(tmp_path):
    autostart.enable(COMMAND, platform="freebsd14", home=tmp_path, env={})
    assert (tmp_path / ".config" / "autostart" / "mouseguard.desktop").is_file()


TRICKY = ["/opt/my apps/py", "-c", 'print("hi")', "$HOME", "back\\slash", "50%", "", "it's", "`x`", "ünï", "a=b"]


def test_exec_quoting_round_trips(xdg):
    where, path = xdg
    autostart.enable(TRICKY, **where)
    assert parse_desktop_exec(read_desktop(path)["Exec"]) == TRICKY
    assert autostart.status(**where).command.startswith("'/opt/my apps/py' -c")


def test_exec_quoting_follows_the_spec():
    # The spec: a literal backslash in a quoted argument is four backslashes in the file,
    # '"' '`' '$' are backslashed inside quotes (then that backslash doubled), '%' is doubled.
    assert desktop_exec(["/usr/bin/python3", "-m", "agent", "run"]) == "/usr/bin/python3 -m agent run"
    assert desktop_exec(["a b\\c"]) == '"a b\\\\\\\\c"'
    assert desktop_exec(['say "$x"']) == '"say \\\\"\\\\$x\\\\""'
    assert desktop_exec(["100%"]) == "100%%"
    assert desktop_exec([""]) == '""'
    assert parse_desktop_exec("prog %u --flag %F") == ["prog", "--flag"]


def test_bad_commands_are_refused(xdg):
    where, _ = xdg
    with pytest.raises(AutostartError):
        autostart.enable([], **where)
    with pytest.raises(AutostartError, match="control characters"):
        autostart.enable(["/bin/prog", "two\nlines"], **where)


def test_unwritable_location_is_one_line_error(tmp_path):
    (tmp_path / "file").write_text("")
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "file")}
    with pytest.raises(AutostartError) as error:
        autostart.enable(COMMAND, platform="linux", env=env)
    assert str(error.value).startswith("cannot write ") and "\n" not in str(error.value)


# ------------------------------------------------------------------------------------ macOS


def test_macos_launch_agent(tmp_path):
    where = dict(platform="darwin", home=tmp_path, env={})
    path = tmp_path / "Library" / "LaunchAgents" / "io.github.mouseguard.agent.plist"
    assert not autostart.status(**where)
    autostart.enable(COMMAND, **where)
    state = autostart.enable(COMMAND, **where)
    assert state and state.location == str(path)
    assert os.listdir(path.parent) == [path.name]
    agent = plistlib.loads(path.read_bytes())
    assert agent["Label"] == "io.github.mouseguard.agent"
    assert agent["ProgramArguments"] == COMMAND
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] is False
    assert agent["LimitLoadToSessionType"] == "Aqua"
    assert "/home/al ice/" in state.command
    assert autostart.disable(**where) is True
    assert autostart.disable(**where) is False
    assert not path.exists() and not autostart.status(**where)


def test_macos_disabled_plist(tmp_path):
    where = dict(platform="darwin", home=tmp_path, env={})
    autostart.enable(COMMAND, **where)
    path = tmp_path / "Library" / "LaunchAgents" / "io.github.mouseguard.agent.plist"
    agent = plistlib.loads(path.read_bytes())
    path.write_bytes(plistlib.dumps({**agent, "Disabled": True}))
    assert not autostart.status(**where)
    path.write_bytes(b"garbage")
    assert "cannot be read" in autostart.status(**where).note


# ---------------------------------------------------------------------------------- Windows

WINDOWS_COMMAND = [r"C:\Users\Al Ice\AppData\Local\mouseguard\venv\Scripts\python.exe", "-m", "agent", "run"]


def test_windows_run_key():
    registry = FakeRunKey()
    where = dict(platform="win32", registry=registry)
    assert not autostart.status(**where)
    autostart.enable(WINDOWS_COMMAND, **where)
    state = autostart.enable(WINDOWS_COMMAND, **where)
    assert list(registry.values) == ["mouseguard"]
    # pythonw.exe: no console window at login.
    expected = r'"C:\Users\Al Ice\AppData\Local\mouseguard\venv\Scripts\pythonw.exe" -m agent run'
    assert registry.values["mouseguard"] == expected
    assert registry.values["mouseguard"] == subprocess.list2cmdline(
        [WINDOWS_COMMAND[0].replace("python.exe", "pythonw.exe"), *WINDOWS_COMMAND[1:]]
    )
    assert state and state.command == expected
    assert state.location == r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run\mouseguard"
    assert autostart.disable(**where) is True
    assert autostart.disable(**where) is False
    assert registry.values == {} and not autostart.status(**where)


def test_windows_other_values_are_left_alone():
    registry = FakeRunKey()
    registry.values["OneDrive"] = "onedrive.exe /background"
    autostart.enable(WINDOWS_COMMAND, platform="win32", registry=registry)
    autostart.disable(platform="win32", registry=registry)
    assert registry.values == {"OneDrive": "onedrive.exe /background"}


def test_windows_registry_failure_is_autostart_error():
    with pytest.raises(AutostartError, match="cannot write HKCU.*Access is denied"):
        autostart.enable(WINDOWS_COMMAND, platform="win32", registry=BrokenRunKey())


def test_default_command():
    assert autostart.default_command("linux", "/venv/bin/python") == ["/venv/bin/python", "-m", "agent", "run"]
    assert autostart.default_command("win32", r"C:\v\Scripts\python.exe") == [
        r"C:\v\Scripts\pythonw.exe", "-m", "agent", "run"]
    assert autostart.default_command()[1:] == ["-m", "agent", "run"]


def test_linux_with_a_systemd_user_manager_starts_a_service_that_restarts(xdg, tmp_path):
    # issue 19: a kill -9 must not end protection for the rest of the session
    where, desktop = xdg
    runtime = tmp_path / "run"
    (runtime / "systemd").mkdir(parents=True)
    (runtime / "systemd" / "private").touch()  # the user manager's socket
    where["env"]["XDG_RUNTIME_DIR"] = str(runtime)
    unit = tmp_path / "xdg" / "systemd" / "user" / "mouseguard.service"
    found = autostart.enable(COMMAND, **where)
    text = unit.read_text()
    assert "Restart=on-failure" in text and f"ExecStart={shlex.join(COMMAND)}" in text.splitlines()
    assert "[Install]" not in text  # started by the session's entry, never outside a session
    assert parse_desktop_exec(read_desktop(desktop)["Exec"]) == autostart.session_start_command()
    assert "import-environment DISPLAY XAUTHORITY" in autostart.session_start_command()[2]
    assert found and str(found) == (f"enabled: {desktop} + {unit} starts {shlex.join(COMMAND)} "
                                    "(systemd user service, Restart=on-failure)")
    unit.unlink()
    assert not autostart.status(**where) and "cannot be read" in autostart.status(**where).note
    autostart.enable(COMMAND, **where)
    assert autostart.disable(**where) and not unit.exists() and not desktop.exists()
    autostart.enable(COMMAND, **where)
    del where["env"]["XDG_RUNTIME_DIR"]  # no manager any more: the entry runs the agent, no stale unit
    assert autostart.enable(COMMAND, **where).command == shlex.join(COMMAND) and not unit.exists()
