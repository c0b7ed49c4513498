"""The user's configuration: one TOML file, validated strictly, explained in place.

Strict because a typo in a security setting must not silently fall back to a default: a
misspelt ``threshhold`` or ``action = "lok"`` stops the agent with one line that names the
file, the key and what is expected, instead of running with protection the user did not ask
for. The first run writes the defaults with a comment above every key, so the file documents
itself and the user never has to guess a key's name.

The schema lives once, in ``_KEYS`` below (type, range, comment) plus the dataclass defaults;
parsing, validation, the defaults file and CLI overrides all read it from there.
"""

from __future__ import annotations

import dataclasses
import difflib
import getpass
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import MouseguardError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from agent import paths
from agent.files import atomic_write_text
from agent.forwarding import valid_authorization, valid_ca_file, valid_syslog_target, valid_webhook_url
from agent.model_dir import MAX_THRESHOLD, MAX_WINDOW, MIN_THRESHOLD, ModelDir


class ConfigError(MouseguardError):
    """A configuration problem, described in one line naming the file and the key."""


ACTIONS = ("lock", "alert", "log")
INJECTED_INPUT_ACTIONS = ("lock", "alert", "off")
#: Longest agent.grace_seconds: the desk goes unjudged that long after every lock, so an hour
#: (the old bound) let whoever came next use it unwatched; five minutes covers the owner's
#: first movements after unlocking many times over.
MAX_GRACE_SECONDS = 300
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True)
class AgentConfig:
    action: str = "lock"
    user: str = ""
    model: str = ""
    pause_minutes: int = 15
    pause_allowed: bool = True
    max_pause_minutes: int = 60
    pauses_per_day: int = 4
    grace_seconds: int = 60
    trial_hours: float = 8.0
    tray: bool = True
    injected_input: str = "lock"


@dataclass(frozen=True)
class DecisionConfig:
    window: int = 0
    threshold: float = 0.0
    unjudged_minutes: int = 10


@dataclass(frozen=True)
class EnrolmentConfig:
    minutes: float = 30.0
    false_locks_per_8h: float = 1.0
    auto: bool = True
    keep_recordings: bool = False


@dataclass(frozen=True)
class CohortConfig:
    dir: str = ""
    refit: bool = True


@dataclass(frozen=True)
class TemplateConfig:
    enabled: bool = True
    update_hours: float = 8.0
    margin: float = 0.3
    quiet_minutes: int = 30


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"


@dataclass(frozen=True)
class ForwardingConfig:
    syslog: str = ""
    eventlog: bool = False
    webhook: str = ""
    webhook_ca: str = ""
    webhook_authorization: str = ""
    webhook_queue: int = 1000


@dataclass(frozen=True)
class Config:
    agent: AgentConfig = field(default_factory=AgentConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    enrolment: EnrolmentConfig = field(default_factory=EnrolmentConfig)
    cohort: CohortConfig = field(default_factory=CohortConfig)
    template: TemplateConfig = field(default_factory=TemplateConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    forwarding: ForwardingConfig = field(default_factory=ForwardingConfig)
    #: The file this configuration came from (None when built in code); not part of equality.
    source: Path | None = field(default=None, compare=False)


_SECTIONS: dict[str, type] = {
    "agent": AgentConfig,
    "decision": DecisionConfig,
    "enrolment": EnrolmentConfig,
    "cohort": CohortConfig,
    "template": TemplateConfig,
    "logging": LoggingConfig,
    "forwarding": ForwardingConfig,
}


def _plain_user_name(value: str) -> bool:
    # The user names a folder under models_dir(); a path here would escape it.
    return value == "" or not (value in (".", "..") or any(c in value for c in "/\\\0"))


def _cohort_folder(value: str) -> bool:
    # Shared by every account of the machine, so it must not depend on where the agent was
    # started (a relative path) — "~/..." would be each account's own folder, not a shared one.
    return value == "" or ("\0" not in value and not value.startswith("~") and os.path.isabs(value))


@dataclass(frozen=True)
class _Key:
    section: str
    name: str
    kind: type  # str, int, float or bool: the Python type after loading
    expected: str  # completes "expected ..." in an error message
    comment: str  # written above the key in the defaults file
    check: Callable[[Any], bool] = lambda value: True
    normalise: Callable[[Any], Any] = lambda value: value
    whole_as_int: bool = False  # render 30.0 as "30" (a count the user thinks of as whole)


_KEYS: tuple[_Key, ...] = (
    _Key(
        "agent", "action", str, 'one of "lock", "alert", "log"',
        'What to do when someone else is at the mouse: "lock" locks the session (and\n'
        'alerts visibly if the lock cannot be confirmed), "alert" only shows a warning,\n'
        '"log" only writes it to the log (for trying mouseguard out).',
        check=lambda v: v in ACTIONS,
    ),
    _Key(
        "agent", "user", str, "a user name (not a path), or \"\" for the login name",
        'Whose model to use. "" means the login name of whoever runs the agent.',
        check=_plain_user_name,
    ),
    _Key(
        "agent", "model", str, 'a model folder path, or "" for the user\'s model folder',
        'Use this model folder instead of the user\'s own. "" means the folder\n'
        "models/<user> in mouseguard's data folder.",
    ),
    _Key(
        "agent", "pause_minutes", int, "a whole number of minutes from 1 to 480",
        'How long "Pause" in the tray menu (and `mouseguard pause` without a length)\n'
        "suspends protection, in minutes (1..480; at most agent.max_pause_minutes).\n"
        "Protection resumes on its own afterwards.",
        check=lambda v: 1 <= v <= 480,
    ),
    _Key(
        "agent", "max_pause_minutes", int, "a whole number of minutes from 1 to 480",
        "The longest pause anyone at the mouse may ask for, in minutes (1..480): a pause\n"
        "switches protection off.",
        check=lambda v: 1 <= v <= 480,
    ),
    _Key(
        "agent", "pauses_per_day", int, "a whole number from 0 to 50",
        "How many pauses a day may take (0..50; 0: no pausing). Counted per calendar day,\n"
        "across restarts of the agent.",
        check=lambda v: 0 <= v <= 50,
    ),
    _Key(
        "agent", "pause_allowed", bool, "true or false",
        "Whether the user may pause protection at all (an administrator's managed\n"
        "policy may set it to false: README, 'Reporting to a security team').",
    ),
    _Key(
        "agent", "grace_seconds", int, f"a whole number of seconds from 0 to {MAX_GRACE_SECONDS}",
        f"After a lock, how long no new decision is taken, in seconds (0..{MAX_GRACE_SECONDS}): the\n"
        "owner's first movements after unlocking are often unlike their usual ones.",
        check=lambda v: 0 <= v <= MAX_GRACE_SECONDS,
    ),
    _Key(
        "agent", "trial_hours", float, "a number of hours from 0 to 168",
        "After enrolment, mouseguard only alerts (never locks) for this many hours of\n"
        "active mouse use, then reports what it would have locked and starts locking\n"
        "(0..168; 0: lock from the start). Models not made by enrolment lock at once.",
        check=lambda v: 0.0 <= v <= 168.0,
        whole_as_int=True,
    ),
    _Key(
        "agent", "injected_input", str, 'one of "lock", "alert", "off"',
        "What to do when a program moves the pointer or clicks while mouseguard protects\n"
        "(xdotool and XTest on X11; input Windows or macOS flag as injected): someone may\n"
        'be replaying your movement. "lock" (or "alert") whatever the model thinks of the\n'
        'movement; "alert" or "off" if you drive this desk with a remote-control tool\n'
        "(x11vnc, Barrier, Synergy).",
        check=lambda v: v in INJECTED_INPUT_ACTIONS,
    ),
    _Key(
        "agent", "tray", bool, "true or false",
        "Show the tray icon (its colour is the protection state). Without it, check\n"
        "`mouseguard status`.",
    ),
    _Key(
        "decision", "window", int, f"a whole number of blocks from 0 to {MAX_WINDOW} (0 = the model's)",
        "How many recent block scores the rolling mean covers. 0 uses the value\n"
        "calibrated with the model; larger reacts more slowly but locks less by mistake.",
        check=lambda v: 0 <= v <= MAX_WINDOW,
    ),
    _Key(
        "decision", "threshold", float,
        f"0 (the model's) or a number from {MIN_THRESHOLD:g} to {MAX_THRESHOLD:g}",
        "Lock when the rolling score falls below this. 0 uses the threshold calibrated\n"
        f"with the model for the false-lock rate below; otherwise {MIN_THRESHOLD:g} to {MAX_THRESHOLD:g}\n"
        "(lower never locks anyone).",
        check=lambda v: v == 0.0 or MIN_THRESHOLD <= v <= MAX_THRESHOLD,
    ),
    _Key(
        "decision", "unjudged_minutes", int, "a whole number of minutes from 1 to 60",
        "Lock (or alert, per agent.action) after this many minutes of keyboard or mouse\n"
        "input without enough mouse movement to judge: someone typing without touching\n"
        "the mouse, or a mouse jiggler (1..60; there is no \"never\").",
        check=lambda v: 1 <= v <= 60,
    ),
    _Key(
        "enrolment", "minutes", float, "a number of minutes greater than 0, at most 1440",
        "Minutes of active mouse movement to collect before enrolling (idle time does\n"
        "not count). More data gives a model that locks out others more reliably.",
        check=lambda v: 0.0 < v <= 1440.0,
        whole_as_int=True,
    ),
    _Key(
        "enrolment", "false_locks_per_8h", float, "a number greater than 0, at most 100",
        "Target rate of locking out the owner by mistake, per 8 hours of use; enrolment\n"
        "calibrates the threshold for it. Lower is less annoying but catches others later.",
        check=lambda v: 0.0 < v <= 100.0,
    ),
    _Key(
        "enrolment", "auto", bool, "true or false",
        "With no model yet, `mouseguard run` learns the user's movements first and then\n"
        "enrols itself. With false it only reports \"not enrolled\".",
    ),
    _Key(
        "enrolment", "keep_recordings", bool, "true or false",
        "After a successful enrolment its recordings are deleted: whoever copies one can\n"
        "replay your movement. The enrolment blocks a refit needs are kept instead (no\n"
        "screen positions). true keeps the recordings too (enroll --keep-recordings).",
    ),
    _Key(
        "cohort", "dir", str, 'an absolute folder path, or "" (off)',
        "A folder shared by the accounts of this workstation (README, 'Shared workstation:\n"
        "a local cohort'). Enrolment trains against the movement the others published there\n"
        "and publishes yours (blocks of velocities, time steps and buttons held: no\n"
        'positions, no recordings). "" keeps your movement to yourself.',
        check=_cohort_folder,
    ),
    _Key(
        "cohort", "refit", bool, "true or false",
        "When someone joins or leaves the cohort folder, the running agent re-enrols you\n"
        "in the background, at low priority, from your enrolment blocks (needs [train]).",
    ),
    _Key(
        "template", "enabled", bool, "true or false",
        "The model follows its owner (docs/template-update.md): the agent keeps blocks it\n"
        "scored as clearly yours and, after template.update_hours of active use, refits\n"
        "the model on them in the background; the new model is taken only if its held-out\n"
        "check is no worse (needs [train]). false keeps the model as enrolled.",
    ),
    _Key(
        "template", "update_hours", float, "a number of hours from 0.5 to 168",
        "Active hours of mouse use between two model updates (0.5..168).",
        check=lambda v: 0.5 <= v <= 168.0,
        whole_as_int=True,
    ),
    _Key(
        "template", "margin", float, "a number from 0.05 to 0.5",
        "A block is kept only if it scores at least this far above the lock threshold\n"
        "(P(genuine), 0.05..0.5): someone staying just below the threshold gives none.",
        check=lambda v: 0.05 <= v <= 0.5,
    ),
    _Key(
        "template", "quiet_minutes", int, "a whole number of minutes from 5 to 240",
        "No block is kept within this many minutes before or after a suspicious state,\n"
        "a lock or an alert (5..240): whoever unlocked may not have been you.",
        check=lambda v: 5 <= v <= 240,
    ),
    _Key(
        "logging", "level", str, 'one of "debug", "info", "warning", "error", "critical"',
        'How much the agent writes to its log file: "debug", "info", "warning", "error"\n'
        'or "critical".',
        check=lambda v: v.lower() in LOG_LEVELS,
        normalise=str.lower,
    ),
    _Key(
        "forwarding", "syslog", str, 'udp://host[:port], tcp://host[:port], unix:///path, "local" or "" (off)',
        "Send the agent's decisions (lock, alert, pause, not protecting...; never mouse\n"
        "data) as RFC 5424 syslog lines to a collector: \"udp://host:514\", \"tcp://host:601\",\n"
        '"unix:///path", or "local" for this machine\'s log (the systemd journal where it\n'
        'runs, with its fields). "" sends nothing.',
        check=valid_syslog_target,
    ),
    _Key(
        "forwarding", "eventlog", bool, "true or false",
        "Windows only: also write those events to the Windows Event Log (Application log,\n"
        'source "mouseguard", the fields in the text). syslog = "local" on Windows means it too.',
    ),
    _Key(
        "forwarding", "webhook", str, 'an https:// URL without user:password, or "" (off)',
        "Also POST each of those events as JSON to this HTTPS address; while it cannot\n"
        'be reached they wait in a queue on disk and are retried. "" sends nothing.',
        check=valid_webhook_url,
    ),
    _Key(
        "forwarding", "webhook_ca", str, 'an absolute path to a PEM file, or "" (the system\'s CAs)',
        "Trust only this CA certificate (PEM) for the webhook's TLS instead of the\n"
        'system\'s ("" = the system\'s). The certificate is always verified.',
        check=valid_ca_file,
    ),
    _Key(
        "forwarding", "webhook_authorization", str, 'one line of printable ASCII, or "" (none)',
        "Sent as the webhook's Authorization header, e.g. \"Bearer <token>\" or \"Splunk\n"
        '<token>" (a collector\'s ingest token). Never logged. "" sends none.',
        check=valid_authorization,
    ),
    _Key(
        "forwarding", "webhook_queue", int, "a whole number of events from 1 to 100000",
        "At most this many events wait on disk for the webhook; beyond it the oldest\n"
        "are dropped (and the log says so once).",
        check=lambda v: 1 <= v <= 100_000,
    ),
)

_KEYS_BY_NAME: dict[str, _Key] = {key.name: key for key in _KEYS}
assert len(_KEYS_BY_NAME) == len(_KEYS), "override flags rely on key names being unique"


# ---------------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike | None = None, write_defaults: bool = True) -> Config:
    """Read the configuration at ``path`` (default ``paths.config_file()``).

    On first run (no file) the defaults file is written, commented, before returning the
    defaults, so the user always has a complete file to edit. Commands that only look
    (``replay``, ``demo``) pass ``write_defaults=False``: no file, the defaults, nothing written.
    """
    path = Path(path) if path is not None else paths.config_file()
    if not path.exists():
        if not write_defaults:
            return Config()
        try:
            paths.ensure(path.parent)
            atomic_write_text(path, dump_config(Config()))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write the default configuration: {exc.strerror or exc}") from None
        return Config(source=path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    return parse_config(raw, source=path)


def parse_config(raw: bytes | str, source: str | os.PathLike | None = None) -> Config:
    """Parse and validate TOML text; ``source`` names the file in error messages."""
    sections = parse_sections(raw, source)
    return Config(
        **{name: cls(**sections.get(name, {})) for name, cls in _SECTIONS.items()},
        source=Path(source) if source is not None else None,
    )


def parse_sections(raw: bytes | str, source: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The keys the TOML text sets, validated, by section: no defaults filled in (the managed
    policy needs to know which keys its file names)."""
    where = str(source) if source is not None else "<config>"
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ConfigError(f"{where}:{line}: not UTF-8 text (TOML files must be UTF-8)") from None
    try:
        document = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_error(where, raw, exc)) from None
    return validate_sections(document, where)


def key_type(section: str, name: str) -> type | None:
    """The type of the key ``section.name`` (bool, int, float, str), None if there is no such key:
    a source without TOML's types (the Windows registry) converts its values by it."""
    key = _KEYS_BY_NAME.get(name)
    return key.kind if key is not None and key.section == section else None


def validate_sections(document: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """The checks of :func:`parse_sections` on parsed values (section -> key -> value), for any
    source of them: the TOML files, and the managed policy in the Windows registry, which must
    be held to exactly the same rules. ``where`` names the source in the one-line errors."""
    sections: dict[str, dict[str, Any]] = {}
    for name, table in document.items():
        if name not in _SECTIONS:
            if isinstance(table, dict):
                hint = _did_you_mean(name, {s: f"[{s}]" for s in _SECTIONS})
                raise ConfigError(f"{where}: unknown section [{name}] ({hint or _one_of(_SECTIONS, '[{}]')})")
            if name in _KEYS_BY_NAME:
                hint = f"it belongs under [{_KEYS_BY_NAME[name].section}]"
            else:
                hint = "every key belongs in a section: " + _one_of(_SECTIONS, "[{}]")
            raise ConfigError(f"{where}: unknown key {name} ({hint})")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {name}: expected a section [{name}], got {_show(table)}")
        known = [key.name for key in _KEYS if key.section == name]
        values: dict[str, Any] = {}
        for key_name, value in table.items():
            if key_name not in known:
                # Prefer a key of this section; a near miss may also be a key put in the wrong one.
                hint = _did_you_mean(key_name, {k: f"{name}.{k}" for k in known}) or _did_you_mean(
                    key_name, {k.name: f"{k.section}.{k.name}" for k in _KEYS}
                )
                raise ConfigError(f"{where}: unknown key {name}.{key_name} ({hint or _one_of(known, '{}')})")
            values[key_name] = _validate(_KEYS_BY_NAME[key_name], value, f"{where}: {name}.{key_name}")
        sections[name] = values
    return sections


def _validate(key: _Key, value: Any, where: str) -> Any:
    """Return ``value`` converted to the key's type, or raise a one-line ConfigError.

    ``where`` prefixes the message: the file for the file, the flag for the command line.
    """
    if not _valid(key, value):
        raise ConfigError(f"{where}: expected {key.expected}, got {_show(value)}")
    return key.normalise(float(value) if key.kind is float else value)


def _valid(key: _Key, value: Any) -> bool:
    if key.kind is bool:
        ok_type = isinstance(value, bool)
    elif isinstance(value, bool):
        ok_type = False  # bool is an int in Python, but `window = true` is a mistake, not 1
    elif key.kind is float:
        ok_type = isinstance(value, (int, float)) and math.isfinite(value)  # nan passes no range
    else:
        ok_type = isinstance(value, key.kind)
    return ok_type and key.check(value)


def _syntax_error(where: str, text: str, exc: Exception) -> str:
    message = str(exc)
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
    if found:
        line = found.group(1)
        message = message[: found.start()] + f" (column {found.group(2)})"
    else:
        line = str(text.count("\n") + 1)  # "(at end of document)"
        message = re.sub(r"\s*\(at end of document\)\s*$", " (at end of file)", message)
    return f"{where}:{line}: TOML syntax error: {message}"


def _did_you_mean(typed: str, choices: Mapping[str, str]) -> str:
    """``choices`` maps a candidate name to how the hint should write it."""
    close = difflib.get_close_matches(typed, list(choices), n=1, cutoff=0.75)
    return f"did you mean {choices[close[0]]}?" if close else ""


def _one_of(choices, pattern: str) -> str:
    return "expected one of: " + ", ".join(pattern.format(c) for c in choices)


def _show(value: Any) -> str:
    """A short, one-line rendering of a TOML value for an error message."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = _toml_string(value)
        return f"the string {text if len(text) <= 60 else text[:57] + '...'}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------ writing and merging


def dump_config(config: Config) -> str:
    """The TOML text of ``config``, with a comment above every key explaining it."""
    lines = [
        "# mouseguard configuration.",
        "# Lines starting with # are comments. Delete this file to get the defaults back:",
        "# it is written again, with these explanations, the next time mouseguard starts.",
    ]
    for section in _SECTIONS:
        lines += ["", f"[{section}]"]
        for key in (k for k in _KEYS if k.section == section):
            lines += [f"# {line}" if line else "#" for line in key.comment.splitlines()]
            lines.append(f"{key.name} = {_toml_value(key, getattr(getattr(config, section), key.name))}")
            lines.append("")
        lines.pop()
    return "\n".join(lines) + "\n"


def write_config(config: Config, path: str | os.PathLike | None = None) -> Path:
    """Write ``config`` atomically (0600) to ``path`` (default ``paths.config_file()``)."""
    path = Path(path) if path is not None else paths.config_file()
    paths.ensure(path.parent)
    atomic_write_text(path, dump_config(config))
    return path


def _toml_value(key: _Key, value: Any) -> str:
    if key.kind is bool:
        return "true" if value else "false"
    if key.kind is str:
        return _toml_string(value)
    if key.kind is float and not (key.whole_as_int and float(value).is_integer()):
        return repr(float(value))
    return str(int(value))


def _toml_string(value: str) -> str:
    # A TOML basic string: escape the quote, the backslash and control characters; everything
    # else (any Unicode) may appear as is. json.dumps is close but not TOML (surrogate pairs).
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char, f"\\u{ord(char):04x}"))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def apply_overrides(config: Config, **cli_flags: Any) -> Config:
    """A new Config where each non-None flag replaces the key of the same name.

    Flag names are the key names (``threshold=0.8``, ``pause_minutes=5``); they are unique
    across sections. Values are validated like the file's, and an error names the flag
    (``--threshold``) because that is what the user typed.
    """
    changes: dict[str, dict[str, Any]] = {}
    for flag, value in cli_flags.items():
        if value is None:
            continue
        key = _KEYS_BY_NAME.get(flag)
        if key is None:
            raise TypeError(f"apply_overrides: no configuration key named {flag!r}")
        if key.kind is str and isinstance(value, os.PathLike):
            value = os.fspath(value)
        checked = _validate(key, value, "command line: --" + flag.replace("_", "-"))
        changes.setdefault(key.section, {})[key.name] = checked
    if not changes:
        return config
    return dataclasses.replace(
        config,
        **{section: dataclasses.replace(getattr(config, section), **values) for section, values in changes.items()},
    )


# ------------------------------------------------------------------------ resolved settings


def effective_user(config: Config) -> str:
    """The user whose model is used: ``agent.user``, or the login name when it is ""."""
    return config.agent.user or getpass.getuser()


def effective_model_dir(config: Config, env: Mapping[str, str] | None = None) -> Path:
    """The model folder to load: ``agent.model``, or ``models_dir()/<user>`` when it is ""."""
    if config.agent.model:
        return Path(config.agent.model).expanduser()
    return paths.user_model_dir(effective_user(config), env)


@dataclass(frozen=True)
class DecisionSettings:
    """What the rolling decision runs with: see :func:`decision_settings`."""

    window: int
    threshold: float
    grace_seconds: float
    #: Input for this long without a judged block acts too (decision.unjudged_minutes).
    unjudged_seconds: float | None = None
    #: The config keys that replaced the model's calibrated values (empty: the model's own).
    from_config: tuple[str, ...] = ()
    #: The file they came from.
    config_source: Path | None = None

    def describe(self) -> str:
        return (f"lock when the mean of {self.window} blocks < {self.threshold:.3f}, "
                f"then no decision for {self.grace_seconds:g} s{self.overrides_note()}")

    def overrides_note(self) -> str:
        """Where the window and threshold came from, when the config replaced the model's."""
        if not self.from_config:
            return ""
        return f" ({', '.join(self.from_config)} from {self.config_source or 'the configuration'})"


def decision_settings(model: ModelDir, config: Config) -> DecisionSettings:
    """The window, threshold and grace period the live agent decides with for ``model``.

    The one source for them: the agent, ``replay`` and ``demo`` all build their pipeline from
    this, so a replay locks where the agent would. ``decision.window``/``decision.threshold``
    replace the manifest's calibrated values unless 0; ``agent.grace_seconds`` always applies.
    """
    d = config.decision
    return DecisionSettings(
        window=d.window or model.decision.window,
        threshold=d.threshold or model.decision.threshold,
        grace_seconds=float(config.agent.grace_seconds),
        unjudged_seconds=60.0 * d.unjudged_minutes,
        from_config=tuple(f"decision.{name}" for name in ("window", "threshold") if getattr(d, name)),
        config_source=config.source,
    )
