"""The enrolment record: the durable "someone has enrolled here", and what their model was.

Without it the agent cannot tell a model that is missing from one never made: delete the model
folder, plant a few recordings, restart the agent, and it would go "learning" and enrol whoever
sits at the desk. With it, a missing model once someone enrolled is a fault (not protecting, then
a lock after the short grace), never a fresh start; only ``mouseguard forget`` removes the record.

The record also holds the SHA-256 of every file of the model folder as enrolment wrote it. The
manifest's own hash covers ``model.onnx`` only, so an edited manifest (``"threshold": 0.0``, a
window no impostor ever fills) passed every check, and a file added beside it (onnxruntime reads
external weights, ``model.onnx.data``, from the folder) was never looked at; against the record,
any file changed, added or removed while the agent was not running is named at start and refused.

The record lives in the agent's state folder, apart from the models, so removing the models
folder (or the whole data folder) leaves it behind. One JSON file per user, written atomically
and private (0600) like everything else.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from pathlib import Path

from agent import paths
from agent.files import atomic_write_text
from agent.model_dir import MANIFEST, ONNX_FILE, ModelDir, ModelError, load_model_dir, sha256_file

log = logging.getLogger("mouseguard.agent")

FORMAT = "mouseguard-enrolment"
FORMAT_VERSION = 1
#: The files a model folder always has, named first when they differ.
FILES = (MANIFEST, ONNX_FILE)


def record_path(user: str, env=None) -> Path:
    """Where ``user``'s enrolment record lives (``state/enrolled/<user>.json``)."""
    return paths.state_dir(env) / "enrolled" / f"{paths.safe_user_name(user)}.json"


def digests(model_dir: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of every entry of the model folder, by name (a folder or other non-file as such)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return {}
    out = {}
    for entry in sorted(model_dir.iterdir()):
        is_file = entry.is_file() and not entry.is_symlink()
        out[entry.name] = sha256_file(entry) if is_file else "not a regular file"
    return out


def write_record(path: str | os.PathLike, user: str, model_dir: str | os.PathLike) -> dict:
    """Record that ``user`` enrolled with the model now in ``model_dir`` (atomic, 0600)."""
    path = Path(path)
    paths.ensure(path.parent)
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "user": user,
        "model": str(Path(model_dir).absolute()),
        "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sha256": digests(model_dir),
    }
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return record


def read_record(path: str | os.PathLike) -> dict | None:
    """The record at ``path``, None when there is none.

    A record that is there but unreadable still says someone enrolled: it raises
    :class:`ModelError` (the agent then fails closed) rather than reading as "never enrolled".
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path}: the enrolment record is unreadable ({exc}); "
                         "'mouseguard enroll' writes it again") from None
    if (not isinstance(record, dict) or record.get("format") != FORMAT
            or not isinstance(record.get("sha256"), dict)):
        raise ModelError(f"{path}: not a mouseguard enrolment record; 'mouseguard enroll' writes it again")
    return record


def check_model(record: dict, model_dir: str | os.PathLike) -> None:
    """Raise :class:`ModelError` naming each file of ``model_dir`` that differs from what
    enrolment wrote (changed, added or gone since ``record`` was made)."""
    model_dir = Path(model_dir)
    now, then = digests(model_dir), record["sha256"]
    names = [*FILES, *sorted((set(now) | set(then)) - set(FILES))]
    changed = [name for name in names if now.get(name) != then.get(name)]
    if changed:
        raise ModelError(
            f"{' and '.join(str(model_dir / name) for name in changed)} changed since enrolment "
            f"({record.get('recorded', 'at an unknown time')}) while mouseguard was not watching; refusing "
            "the model. If you changed it, re-enrol ('mouseguard enroll')")


def load_verified(model_dir: str | os.PathLike, record: str | os.PathLike | None, user: str) -> ModelDir:
    """:func:`load_model_dir`, and with the path of ``user``'s enrolment ``record`` also
    :func:`check_model` against it; raises :class:`ModelError`. A model without a record (made
    before records existed, or by ``train fit --out``) gets one now: it is what the agent
    protects with from here on."""
    model = load_model_dir(model_dir)
    if record is None:
        return model
    found = read_record(record)
    if found is not None:
        check_model(found, model_dir)
        return model
    try:
        write_record(record, user, model_dir)
        log.warning("no enrolment record for %s: recorded the model now in %s", user, model_dir)
    except OSError as exc:  # protecting matters more; the next start tries again
        log.error("cannot write the enrolment record %s: %s", record, exc.strerror or exc)
    return model


def seen_path(record: str | os.PathLike) -> Path:
    """Beside the record: the model the agent last protected with (``.<user>.json.seen``: not
    ending in .json, so no user's record can be named like it)."""
    record = Path(record)
    return record.with_name(f".{record.name}.seen")


def enrolled_since_last_run(record: dict, record_file: str | os.PathLike) -> str:
    """What to tell the owner when the record differs from the one the agent last protected
    with: ``mouseguard enroll`` run while no agent ran asks no password, so a new model is
    announced (and reported), never adopted in silence. "" when it is the same, or when the
    agent never protected with a record here before (a first start, an upgrade)."""
    path = seen_path(record_file)
    try:
        seen = json.loads(path.read_text(encoding="utf-8")).get("sha256")
    except (OSError, ValueError, AttributeError):
        seen = None
    if seen != record.get("sha256"):
        try:
            atomic_write_text(path, json.dumps({"sha256": record.get("sha256"),
                                                "recorded": record.get("recorded")}) + "\n")
        except OSError as exc:
            log.warning("cannot note the model protected with in %s: %s", path, exc.strerror or exc)
    if seen is None or seen == record.get("sha256"):
        return ""
    return (f"A new model of {record.get('user', '?')} was enrolled ({record.get('recorded', '?')}) while "
            "mouseguard was not running, and it protects with it now. If you did not enrol, someone else "
            "may have: run 'mouseguard enroll' yourself.")
