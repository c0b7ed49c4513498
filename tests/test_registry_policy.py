"""The managed policy from the Windows registry (agent/registry_policy.py): values of each type,
no key = no policy, bad values as one-line errors, and the same policy through TOML and through
the registry giving the same result.

``winreg`` exists only on Windows: a fake registry stands in for it, with winreg's constants,
calls and conventions (FileNotFoundError for a missing key, handles as context managers,
QueryInfoKey / EnumKey / EnumValue). Everything behind it is the real policy code.
"""

from __future__ import annotations

import pytest

from agent import policy as policy_module
from agent.config import Config, ConfigError, parse_config
from agent.policy import POLICY_ENV, enforce, load_policy
from agent.registry_policy import LOCATION, POLICY_KEY


class FakeWinreg:
    HKEY_LOCAL_MACHINE = 0x80000002
    KEY_READ = 0x20019
    KEY_WOW64_64KEY = 0x0100
    REG_NONE, REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_QWORD = 0, 1, 2, 3, 4, 7, 11

    class Key:
        def __init__(self, path, node):
            self.path, self.node, self.closed = path, node, False

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.closed = True

    def __init__(self, tree=None, denied=False):
        """``tree``: {subkey path under HKLM (any case): {value name: (data, type)}}."""
        self.tree = {k.lower(): dict(v) for k, v in (tree or {}).items()}
        self.denied = denied
        self.opened = []

    def _node(self, path):
        values = self.tree.get(path.lower())
        below = sorted({k[len(path) + 1:].split("\\")[0] for k in self.tree
                        if k.startswith(path.lower() + "\\")})
        if values is None and not below:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return {"values": list((values or {}).items()), "subkeys": below}

    def OpenKey(self, parent, sub, reserved=0, access=KEY_READ):  # noqa: N802 - winreg's names
        assert reserved == 0
        self.opened.append((sub, access))
        if self.denied:
            raise PermissionError(5, "Access is denied")
        path = sub if parent == self.HKEY_LOCAL_MACHINE else f"{parent.path}\\{sub}"
        return self.Key(path, self._node(path))

    def QueryInfoKey(self, key):  # noqa: N802
        assert not key.closed
        return len(key.node["subkeys"]), len(key.node["values"]), 0

    def EnumKey(self, key, i):  # noqa: N802
        if i >= len(key.node["subkeys"]):
            raise OSError(259, "No more data is available")
        return key.node["subkeys"][i]

    def EnumValue(self, key, i):  # noqa: N802
        if i >= len(key.node["values"]):
            raise OSError(259, "No more data is available")
        name, (data, kind) = key.node["values"][i]
        return name, data, kind


R = FakeWinreg

TOML = """
[agent]
action = "lock"
pause_allowed = false
pause_minutes = 5

[decision]
threshold = 0.55

[enrolment]
false_locks_per_8h = 2

[forwarding]
syslog = "udp://siem.example.com:514"
webhook_queue = 500
"""

REGISTRY = {
    POLICY_KEY + r"\agent": {"action": ("lock", R.REG_SZ), "pause_allowed": (0, R.REG_DWORD),
                             "Pause_Minutes": (5, R.REG_DWORD)},  # registry names are case-blind
    POLICY_KEY + r"\decision": {"threshold": ("0.55", R.REG_SZ)},
    POLICY_KEY + r"\enrolment": {"false_locks_per_8h": (2, R.REG_DWORD)},  # a whole decimal as a DWORD
    POLICY_KEY + r"\forwarding": {"syslog": ("udp://siem.example.com:514", R.REG_SZ),
                                  "webhook_queue": (500, R.REG_QWORD)},
}


def from_registry(tree, env=None):
    return load_policy(env=env or {}, platform="win32", registry=FakeWinreg(tree))


def test_values_of_each_type_become_the_policys_values():
    registry = FakeWinreg(REGISTRY)
    policy = load_policy(env={}, platform="win32", registry=registry)
    assert policy.path == LOCATION == r"HKLM\SOFTWARE\Policies\mouseguard"
    assert policy.values == {
        "agent": {"action": "lock", "pause_allowed": False, "pause_minutes": 5},
        "decision": {"threshold": 0.55},
        "enrolment": {"false_locks_per_8h": 2.0},
        "forwarding": {"syslog": "udp://siem.example.com:514", "webhook_queue": 500},
    }
    assert type(policy.values["agent"]["pause_minutes"]) is int
    assert type(policy.values["enrolment"]["false_locks_per_8h"]) is float
    # the 64-bit view, so a 32-bit Python reads the key Group Policy wrote
    assert all(access & FakeWinreg.KEY_WOW64_64KEY and access & FakeWinreg.KEY_READ
               for _, access in registry.opened)
    (line,) = policy.describe()
    assert line.startswith(f'managed policy {LOCATION} locks: agent.action = "lock", agent.pause_allowed = false')


def test_no_key_is_no_policy_and_an_empty_key_locks_nothing(tmp_path):
    assert from_registry({}).values == {} and from_registry({}).path is None
    assert from_registry({}).describe() == []
    assert from_registry({POLICY_KEY: {}}).describe() == [f"managed policy {LOCATION}: locks nothing"]
    # with no key, MOUSEGUARD_POLICY_FILE (a test policy) is read, as on Linux with no /etc file
    file = tmp_path / "p.toml"
    file.write_text('[agent]\naction = "alert"\n')
    assert from_registry({}, env={POLICY_ENV: str(file)}).values == {"agent": {"action": "alert"}}
    # ... and never in place of the administrator's key
    assert from_registry(REGISTRY, env={POLICY_ENV: str(file)}).values["agent"]["action"] == "lock"


@pytest.mark.parametrize("tree, message", [
    ({POLICY_KEY + r"\agent": {"pause_allowed": ("no", R.REG_SZ)}},
     r"HKLM\SOFTWARE\Policies\mouseguard\agent: pause_allowed: expected a REG_DWORD 0 (false) or 1 (true), "
     "got REG_SZ 'no'"),
    ({POLICY_KEY + r"\agent": {"pause_allowed": (2, R.REG_DWORD)}},
     r"HKLM\SOFTWARE\Policies\mouseguard\agent: pause_allowed: expected a REG_DWORD 0 (false) or 1 (true), "
     "got REG_DWORD 2"),
    ({POLICY_KEY + r"\agent": {"pause_minutes": ("5", R.REG_SZ)}},
     "agent: pause_minutes: expected a whole number as a REG_DWORD, got REG_SZ '5'"),
    ({POLICY_KEY + r"\decision": {"threshold": ("high", R.REG_SZ)}},
     'decision: threshold: expected a number as a REG_SZ such as "0.5" (or a REG_DWORD), got REG_SZ \'high\''),
    ({POLICY_KEY + r"\agent": {"action": ("%ACTION%", R.REG_EXPAND_SZ)}},
     "agent: action: expected text as a REG_SZ, got REG_EXPAND_SZ '%ACTION%'"),
    # the config's own checks, word for word as for the TOML file, naming the key instead
    ({POLICY_KEY + r"\agent": {"action": ("lok", R.REG_SZ)}},
     r'HKLM\SOFTWARE\Policies\mouseguard: agent.action: expected one of "lock", "alert", "log", got the string "lok"'),
    ({POLICY_KEY + r"\agent": {"pause_minutes": (100000, R.REG_DWORD)}},
     "agent.pause_minutes: expected a whole number of minutes from 1 to 480"),
    ({POLICY_KEY + r"\agent": {"actoin": ("lock", R.REG_SZ)}},
     "unknown key agent.actoin (did you mean agent.action?)"),
    ({POLICY_KEY + r"\agnet": {"action": ("lock", R.REG_SZ)}}, "unknown section [agnet] (did you mean [agent]?)"),
    ({POLICY_KEY: {"action": ("lock", R.REG_SZ)}},
     r"value action is not in a section: keys go in a subkey named after their section, e.g. "
     r"HKLM\SOFTWARE\Policies\mouseguard\agent\action"),
    ({POLICY_KEY + r"\agent\more": {"action": ("lock", R.REG_SZ)}}, r"mouseguard\agent: has subkeys"),
])
def test_a_bad_value_is_a_one_line_error_naming_the_key(tree, message):
    with pytest.raises(ConfigError) as caught:
        from_registry(tree)
    text = str(caught.value)
    assert message in text and text.startswith(LOCATION) and "\n" not in text


def test_an_unreadable_key_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"^HKLM\\SOFTWARE\\Policies\\mouseguard: cannot read the managed "
                                          r"policy: Access is denied$"):
        load_policy(env={}, platform="win32", registry=FakeWinreg(REGISTRY, denied=True))


def test_the_same_policy_through_toml_and_the_registry_gives_the_same_result(tmp_path):
    file = tmp_path / "policy.toml"
    file.write_text(TOML)
    toml = load_policy(env={POLICY_ENV: str(file)}, system=tmp_path / "none", platform="linux")
    registry = from_registry(REGISTRY)
    assert registry.values == toml.values and registry.locked == toml.locked
    user = parse_config('[agent]\naction = "log"\npause_minutes = 10\n[decision]\nthreshold = 0.7\n')
    (config_t, notes_t), (config_r, notes_r) = enforce(user, toml), enforce(user, registry)
    assert config_r == config_t and config_r != user
    assert [n.replace(LOCATION, "<policy>") for n in notes_r] == [n.replace(str(file), "<policy>") for n in notes_t]
    assert [line.replace(LOCATION, "<policy>") for line in registry.describe()] == [
        line.replace(f"{file} (MOUSEGUARD_POLICY_FILE, a test policy)", "<policy>") for line in toml.describe()]


def test_status_shows_the_keys_the_registry_locks(monkeypatch, mouseguard_home):
    from agent.commands import policy_lines

    (mouseguard_home / "config").mkdir(parents=True, exist_ok=True)
    (mouseguard_home / "config" / "config.toml").write_text('[agent]\naction = "log"\n')
    real = policy_module.load_policy
    monkeypatch.setattr(policy_module, "load_policy", lambda: real(env={}, platform="win32",
                                                                  registry=FakeWinreg(REGISTRY)))
    lines = policy_lines()
    assert lines[0].startswith(f"managed policy {LOCATION} locks: agent.action = \"lock\"")
    assert "forwarding.syslog = \"udp://siem.example.com:514\"" in lines[0]
    assert lines[1] == (f'  agent.action is locked to "lock" by the managed policy {LOCATION}; '
                        'your setting "log" is ignored')
    monkeypatch.setattr(policy_module, "load_policy", lambda: real(env={}, platform="win32", registry=FakeWinreg(
        {POLICY_KEY + r"\agent": {"pause_allowed": ("no", R.REG_SZ)}})))
    (line,) = policy_lines()
    assert line.startswith(f"managed policy: unusable, the agent will not start: {LOCATION}\\agent: pause_allowed")


def test_defaults_are_untouched_without_a_policy():
    assert enforce(Config(), from_registry({})) == (Config(), [])
