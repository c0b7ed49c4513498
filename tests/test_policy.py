"""The managed policy: parsing with the config's schema, overriding and locking the user's keys,
the ownership check, MOUSEGUARD_POLICY_FILE's limits, `mouseguard status`, and what the agent
does with locked pause settings (with fleet events to a real UDP syslog receiver)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent import fleet_events, states
from agent.config import Config, ConfigError, load_config, parse_config
from agent.fleet_events import Reporter
from agent.forwarding.syslog import SD_ID, SyslogDestination
from agent.policy import POLICY_ENV, Policy, enforce, load_policy, trust_problem
from agent.responses.actor import Actor
from agent.responses.result import LockResult
from agent.runner import Agent
from tests.fakes import RecordingTray
from tests.rfc5424 import UdpReceiver
from tests.waiting import wait_for

POLICY = """
[agent]
action = "lock"
pause_allowed = false
pause_minutes = 5

[forwarding]
syslog = "udp://siem.example.com:514"
"""


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def me_as_admin():
    return (0, os.getuid())  # tests cannot chown to root unless they run as root


def test_policy_keys_override_and_lock_the_users_with_one_note_each(tmp_path):
    policy = load_policy(env={POLICY_ENV: str(write(tmp_path / "policy.toml", POLICY))}, system=tmp_path / "none")
    assert policy.locked == ("agent.action", "agent.pause_allowed", "agent.pause_minutes", "forwarding.syslog")
    user = parse_config('[agent]\naction = "log"\npause_minutes = 5\n[forwarding]\nwebhook = "https://mine.example/h"\n')
    config, notes = enforce(user, policy)
    assert config.agent.action == "lock" and config.agent.pause_allowed is False
    assert config.forwarding.syslog == "udp://siem.example.com:514"
    assert config.forwarding.webhook == "https://mine.example/h"  # not locked: the user's own stays
    assert config.agent.pause_minutes == 5 and config.decision == Config().decision
    # one note per setting the policy actually changed (pause_minutes agreed already)
    assert notes == [
        f'agent.action is locked to "lock" by the managed policy {tmp_path / "policy.toml"}; '
        'your setting "log" is ignored',
        f"agent.pause_allowed is locked to false by the managed policy {tmp_path / 'policy.toml'}; "
        "your setting true is ignored",
        f'forwarding.syslog is locked to "udp://siem.example.com:514" by the managed policy '
        f'{tmp_path / "policy.toml"}; your setting "" is ignored',
    ]
    assert policy.describe() == [
        f"managed policy {tmp_path / 'policy.toml'} (MOUSEGUARD_POLICY_FILE, a test policy) locks: "
        'agent.action = "lock", agent.pause_allowed = false, agent.pause_minutes = 5, '
        'forwarding.syslog = "udp://siem.example.com:514"']


def test_a_locked_token_is_never_shown(tmp_path):
    path = write(tmp_path / "p.toml", '[forwarding]\nwebhook_authorization = "Bearer s3cret"\n')
    policy = load_policy(env={POLICY_ENV: str(path)}, system=tmp_path / "none")
    config, notes = enforce(parse_config('[forwarding]\nwebhook_authorization = "Bearer mine"\n'), policy)
    assert config.forwarding.webhook_authorization == "Bearer s3cret"
    shown = " ".join(policy.describe() + notes)
    assert "s3cret" not in shown and "mine" not in shown and '"(hidden)"' in shown


def test_no_policy_changes_nothing():
    config = parse_config('[agent]\naction = "log"\n')
    assert enforce(config, Policy()) == (config, [])
    assert Policy().describe() == [] or sys.platform == "win32"


@pytest.mark.parametrize("text, message", [
    ('[agent]\naction = "lok"\n', r'policy.toml: agent.action: expected one of "lock", "alert", "log"'),
    ("[agent]\npause_alowed = false\n", r"unknown key agent.pause_alowed \(did you mean agent.pause_allowed\?\)"),
    ("[forwarding]\nwebhook = \"http://x/h\"\n", r"forwarding.webhook: expected an https:// URL"),
    ("[agent\n", r"policy.toml:1: TOML syntax error"),
])
def test_a_broken_policy_is_one_line_naming_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path / "policy.toml", text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_policy(env={POLICY_ENV: str(path)}, system=tmp_path / "none")
    assert "\n" not in str(caught.value)


def test_the_environment_variable_cannot_replace_a_system_policy(tmp_path):
    system = write(tmp_path / "etc" / "policy.toml", '[agent]\naction = "lock"\n')
    mine = write(tmp_path / "mine.toml", '[agent]\naction = "log"\n')
    # (the system file here is under tmp_path, owned by whoever runs the tests, so trust fails
    # unless that is root; either way the user's file is not what is read)
    policy = load_policy(env={POLICY_ENV: str(mine)}, system=system)
    assert policy.path == system and not policy.from_env
    assert policy.values.get("agent", {}).get("action", "lock") == "lock"


def test_trusted_only_when_nobody_but_the_administrator_can_change_it(tmp_path):
    folder = tmp_path / "etc-mouseguard"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    good = write(folder / "policy.toml", POLICY, 0o644)
    assert trust_problem(good, admins=me_as_admin()) == ""

    os.chmod(good, 0o664)
    assert trust_problem(good, admins=me_as_admin()) == f"{good} is writable by its group"
    os.chmod(good, 0o646)
    assert trust_problem(good, admins=me_as_admin()) == f"{good} is writable by others"
    os.chmod(good, 0o644)

    os.chmod(folder, 0o777)  # the user could rename the file away and put their own there
    assert trust_problem(good, admins=me_as_admin()) == f"{folder} is writable by others"
    os.chmod(folder, 0o1777)  # sticky (like /tmp): only an entry's owner may rename it
    assert trust_problem(good, admins=me_as_admin()) == ""
    os.chmod(folder, 0o755)

    link = tmp_path / "link.toml"
    link.symlink_to(good)
    assert trust_problem(link, admins=me_as_admin()) == ""  # the file it points to is checked

    if os.geteuid() == 0:
        os.chown(good, 4242, -1)  # another user owns it: they could edit it
        assert trust_problem(good, admins=(0,)) == f"{good} is owned by uid 4242, not by root: its owner could " \
                                                    "change the policy"
    else:
        assert "not by root" in trust_problem(good, admins=(0,))


def test_an_untrusted_system_policy_is_ignored_and_says_why(tmp_path):
    system = write(tmp_path / "policy.toml", POLICY, 0o666)
    policy = load_policy(env={}, system=system)
    assert policy.values == {} and "writable by others" in policy.ignored
    assert policy.describe() == [f"managed policy {system}: IGNORED ({policy.ignored})"]
    assert enforce(Config(), policy) == (Config(), [])


def test_status_lists_the_locked_keys_and_the_overridden_settings(tmp_path):
    home = tmp_path / "home"
    write(home / "config" / "config.toml", '[agent]\naction = "log"\n', 0o600)
    policy = write(tmp_path / "policy.toml", POLICY)
    env = {**os.environ, "MOUSEGUARD_HOME": str(home), POLICY_ENV: str(policy)}
    out = subprocess.run([sys.executable, "-m", "agent", "status"], env=env, capture_output=True, text=True)
    assert out.returncode == 3, out.stderr  # no agent runs: status says so in its exit code
    lines = out.stdout.splitlines()
    assert lines[0].startswith("not running") and lines[1].startswith("  log: ")
    lines = lines[1:]  # the policy's lines come after the log's path
    assert lines[1].startswith(f"managed policy {policy}") and "agent.action = \"lock\"" in lines[1]
    assert "forwarding.syslog" in lines[1]
    assert lines[2] == (f'  agent.action is locked to "lock" by the managed policy {policy}; '
                        'your setting "log" is ignored')

    write(policy, "[agent]\nactoin = 1\n")  # broken: status says the agent will not start
    out = subprocess.run([sys.executable, "-m", "agent", "status"], env=env, capture_output=True, text=True)
    assert out.returncode == 3 and "managed policy: unusable, the agent will not start" in out.stdout
    assert "Traceback" not in out.stderr


# -- the agent under a policy: pausing ---------------------------------------------------------


@pytest.fixture
def receiver():
    r = UdpReceiver()
    fleet_events.start_reporting(Reporter([SyslogDestination(r.target)], user="alice"))
    yield r
    fleet_events.stop_reporting(1.0)
    r.close()


def make_agent(tmp_path, config):
    tray = RecordingTray()
    actor = Actor("lock", lambda: LockResult(True, "fake"), tray.notify)
    agent = Agent(config, tray, actor, model_dir=tmp_path / "model", user="alice",
                  status_path=tmp_path / "status.json", recordings_dir=tmp_path / "rec")
    # The pause door stays shut until start() has a hook supervisor ("still starting"); these
    # tests are about the policy's pause rules, not the mouse hook, so the agent looks started.
    agent.supervisor = SimpleNamespace(stop=lambda: None, healthy=True)
    return agent, tray


def test_pause_refused_when_the_policy_forbids_it(tmp_path, receiver):
    policy = load_policy(env={POLICY_ENV: str(write(tmp_path / "p.toml", POLICY))}, system=tmp_path / "none")
    config, _ = enforce(load_config(tmp_path / "config.toml"), policy)
    agent, tray = make_agent(tmp_path, config)
    agent.policy_locked = frozenset(policy.locked)
    agent.from_tray("pause", 15)  # the tray's door, which says why on a refusal
    assert agent.paused_until is None
    assert tray.notifications == [("mouseguard: pause refused", "pausing is not allowed by your administrator's "
                                   "managed policy (agent.pause_allowed = false)")]
    fleet_events.emit("agent_stopped", "x")  # a marker: nothing was reported before it
    wait_for(lambda: receiver.lines, what="the marker")
    assert receiver.names() == ["agent_stopped"]


def test_a_locked_pause_length_caps_the_pause_and_both_are_reported(tmp_path, receiver):
    policy = load_policy(env={POLICY_ENV: str(write(tmp_path / "p.toml", "[agent]\npause_minutes = 5\n"))},
                         system=tmp_path / "none")
    config, _ = enforce(Config(), policy)
    agent, _ = make_agent(tmp_path, config)
    agent.policy_locked = frozenset(policy.locked)
    import time

    done, message = agent.control("pause", 60)  # an hour: the policy allows 5 minutes
    assert not done and "at most 5 minutes" in message and agent.paused_until is None
    assert agent.control("pause")[0]  # the policy's length
    assert agent.paused_until - time.time() == pytest.approx(300, abs=5)
    agent.resume()
    wait_for(lambda: len(receiver.lines) == 2, what="paused and resumed")
    paused, resumed = receiver.events()
    assert paused["msgid"] == "paused" and paused["sd"][SD_ID]["reason"] == "by the user for 5 min"
    assert paused["sd"][SD_ID]["state"] == states.PAUSED
    assert resumed["msgid"] == "resumed" and resumed["sd"][SD_ID]["user"] == "alice"
