"""The configuration file: written commented on first run, validated strictly, overridable."""

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from agent import config as cfg
from agent.config import Config, ConfigError, apply_overrides, dump_config, load_config, parse_config


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- first run


def test_first_run_writes_commented_private_defaults(tmp_path):
    path = tmp_path / "new" / "config.toml"
    loaded = load_config(path)
    assert loaded == Config()
    assert loaded.source == path
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left over

    lines = path.read_text(encoding="utf-8").splitlines()
    keys = [i for i, line in enumerate(lines) if line and not line.startswith(("#", "["))]
    # 14 + pause_allowed and [forwarding] x6 (issue 22), unjudged_minutes (19), the pause caps and trial (20),
    # [template] x4 (issue 22, the template update), agent.injected_input and enrolment.keep_recordings (19)
    assert len(keys) == 31
    for i in keys:
        assert lines[i - 1].startswith("# "), f"no comment above {lines[i]!r}"
    for section in ("[agent]", "[decision]", "[enrolment]", "[logging]"):
        assert section in lines
    for expected in ('action = "lock"', 'user = ""', "pause_minutes = 15", "grace_seconds = 60",
                     "max_pause_minutes = 60", "pauses_per_day = 4", "trial_hours = 8",
                     "tray = true", "window = 0", "threshold = 0.0", "unjudged_minutes = 10", "minutes = 30",
                     "false_locks_per_8h = 1.0", "auto = true", 'level = "info"'):
        assert expected in lines


def test_existing_file_is_read_not_rewritten(tmp_path):
    path = write(tmp_path, "[decision]\nthreshold = 0.8\n")
    loaded = load_config(path)
    assert loaded.decision.threshold == 0.8
    assert loaded.agent == cfg.AgentConfig()  # everything not given keeps its default
    assert path.read_text(encoding="utf-8") == "[decision]\nthreshold = 0.8\n"


def test_default_location_follows_mouseguard_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MOUSEGUARD_HOME", str(tmp_path))
    load_config()
    assert (tmp_path / "config" / "config.toml").is_file()


def test_unwritable_location_is_one_line_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "file" / "config.toml")
    assert "cannot write" in str(error.value) and "\n" not in str(error.value)


# ------------------------------------------------------------------------------ round trip


def test_dump_and_parse_round_trip():
    custom = Config(
        agent=cfg.AgentConfig(action="alert", user="ålice", model='C:\\models\\"odd" path\n',
                              pause_minutes=480, grace_seconds=0, tray=False),
        decision=cfg.DecisionConfig(window=7, threshold=0.123456789),
        enrolment=cfg.EnrolmentConfig(minutes=2.5, false_locks_per_8h=0.25, auto=False),
        logging=cfg.LoggingConfig(level="debug"),
    )
    assert parse_config(dump_config(custom)) == custom
    assert parse_config(dump_config(Config())) == Config()


def test_write_config_then_load(tmp_path):
    custom = apply_overrides(Config(), action="log", window=3)
    path = cfg.write_config(custom, tmp_path / "c.toml")
    assert mode(path) == 0o600
    assert load_config(path) == custom


def test_lenient_where_harmless(tmp_path):
    loaded = parse_config('[decision]\nthreshold = 0\n[enrolment]\nminutes = 10\n[logging]\nlevel = "INFO"\n')
    assert loaded.decision.threshold == 0.0 and isinstance(loaded.decision.threshold, float)
    assert loaded.enrolment.minutes == 10.0 and isinstance(loaded.enrolment.minutes, float)
    assert loaded.logging.level == "info"


# ------------------------------------------------------------------------------ bad values

BAD_VALUES = [
    ("agent", "action", '"lok"'),
    ("agent", "action", "1"),
    ("agent", "user", '"../bob"'),
    ("agent", "user", "false"),
    ("agent", "model", "3"),
    ("agent", "pause_minutes", "0"),
    ("agent", "pause_minutes", "481"),
    ("agent", "pause_minutes", "1.5"),
    ("agent", "pause_minutes", '"15"'),
    ("agent", "grace_seconds", "-1"),
    ("agent", "grace_seconds", "3601"),
    ("agent", "grace_seconds", "301"),  # the desk unjudged for that long after every lock
    ("agent", "max_pause_minutes", "0"),
    ("agent", "max_pause_minutes", "481"),
    ("agent", "pauses_per_day", "-1"),
    ("agent", "pauses_per_day", "51"),
    ("agent", "trial_hours", "-1"),
    ("agent", "trial_hours", "169"),
    ("agent", "trial_hours", "nan"),
    ("agent", "tray", '"yes"'),
    ("agent", "tray", "1"),
    ("decision", "window", "true"),
    ("decision", "window", "-1"),
    ("decision", "window", "[1, 2]"),
    ("decision", "threshold", "1.0"),
    ("decision", "threshold", "0.001"),  # a threshold that never locks
    ("decision", "threshold", "1e-9"),
    ("decision", "threshold", "0.995"),
    ("decision", "window", "101"),  # a window no impostor's session fills
    ("decision", "unjudged_minutes", "0"),  # typing without the mouse would never be judged
    ("decision", "unjudged_minutes", "61"),
    ("decision", "unjudged_minutes", "2.5"),
    ("decision", "threshold", "-0.1"),
    ("decision", "threshold", '"0.5"'),
    ("decision", "threshold", "nan"),
    ("decision", "threshold", "inf"),
    ("decision", "threshold", "{ a = 1 }"),
    ("enrolment", "minutes", "0"),
    ("enrolment", "minutes", "1441"),
    ("enrolment", "false_locks_per_8h", "0.0"),
    ("enrolment", "auto", '"true"'),
    ("logging", "level", '"verbose"'),
]


@pytest.mark.parametrize("section,key,value", BAD_VALUES)
def test_bad_value_names_file_and_key(tmp_path, section, key, value):
    path = write(tmp_path, f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}: {section}.{key}: expected ")
    assert ", got " in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("[enrollment]\nminutes = 3\n", "unknown section [enrollment] (did you mean [enrolment]?)"),
        ("[network]\nport = 3\n", "unknown section [network]"),
        ('action = "lock"\n', "unknown key action (it belongs under [agent])"),
        ("foo = 1\n", "unknown key foo"),
        ("[agent]\nthreshold = 0.5\n", "unknown key agent.threshold (did you mean decision.threshold?)"),
        ("[agent]\nactoin = 'lock'\n", "unknown key agent.actoin (did you mean agent.action?)"),
        ("[agent]\nzzz = 1\n", "unknown key agent.zzz (expected one of: action, user"),
        ("agent = 3\n", "agent: expected a section [agent]"),
    ],
)
def test_unknown_names(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: ")
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "text,line",
    [
        ("[agent]\naction = \"lock\"\n\n[decision\nwindow = 3\n", 4),
        ("[agent]\ntray = yes\n", 2),
        ("[agent]\naction = \"lock\"\naction = \"alert\"\n", 3),
        ("[agent]\nuser = \"unterminated\n", 2),
        ("[agent]\nmodel = [1,", 2),
    ],
)
def test_syntax_error_names_file_and_line(tmp_path, text, line):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line}: TOML syntax error: ")
    assert "\n" not in message


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b'[agent]\nuser = "\xe9"\n')
    with pytest.raises(ConfigError, match=r":2: not UTF-8"):
        load_config(path)


# ------------------------------------------------------------------------------- overrides


def test_overrides_win_and_none_is_ignored():
    base = parse_config('[agent]\naction = "alert"\n[decision]\nwindow = 5\n')
    merged = apply_overrides(base, action="lock", threshold=0.7, tray=None, window=None, level="DEBUG",
                             model=Path("/m/alice"))
    assert merged.agent.action == "lock"
    assert merged.decision.threshold == 0.7
    assert merged.decision.window == 5  # None: the file's value stays
    assert merged.agent.tray is True
    assert merged.logging.level == "debug"
    assert merged.agent.model == "/m/alice"
    assert base.agent.action == "alert"  # the original is untouched (frozen)
    assert apply_overrides(base) == base
    with pytest.raises(dataclasses.FrozenInstanceError):
        merged.agent.action = "log"


def test_bad_override_names_the_flag():
    with pytest.raises(ConfigError) as error:
        apply_overrides(Config(), pause_minutes=0)
    assert str(error.value).startswith("command line: --pause-minutes: expected ")
    with pytest.raises(ConfigError, match="--threshold"):
        apply_overrides(Config(), threshold=1.5)


def test_unknown_override_is_a_programming_error():
    with pytest.raises(TypeError):
        apply_overrides(Config(), colour="red")


def test_effective_user_and_model(tmp_path, monkeypatch):
    monkeypatch.setattr(cfg.getpass, "getuser", lambda: "carol")
    env = {"MOUSEGUARD_HOME": str(tmp_path)}
    assert cfg.effective_user(Config()) == "carol"
    assert cfg.effective_model_dir(Config(), env) == tmp_path / "data" / "models" / "carol"
    bob = apply_overrides(Config(), user="bob")
    assert cfg.effective_model_dir(bob, env) == tmp_path / "data" / "models" / "bob"
    explicit = apply_overrides(bob, model="/opt/model")
    assert cfg.effective_model_dir(explicit, env) == Path("/opt/model")
