"""The local cohort: the enrolment blocks of the other people who use this workstation.

A model trained only against the shipped pool (people recorded on other machines) learns
"this desk", not "this hand", and takes anyone at the owner's desk for the owner. On a shared
workstation the best impostors are at hand: the other accounts' movement at this very desk.
Each enrolled account publishes its blocks in one machine-wide folder (``cohort.dir``), and
every enrolment trains against the others' — nothing leaves the machine.

A member file ``<dir>/<user>.npz`` holds only what a model is trained on: the blocks (velocity,
time-step and button-held channels: no positions, no raw recording), the block spec they were
cut with (JSON) and a format version. It is readable by the folder's group (0640), never by
everyone. The folder is shared with other accounts, so nothing in it is trusted: a symlink is
neither followed nor written through, a damaged, oversized or foreign file is skipped with one
warning, and a file holding blocks of the reader's own is not taken as someone else's movement.

stdlib + numpy only: the agent reads the folder's names and times without torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from agent.blocks import FEATURES, BlockSpec, BlockSpecError
from agent.errors import MouseguardError
from agent.files import atomic_open
from agent.paths import UserNameError, safe_user_name

FORMAT = "mouseguard-cohort-member"
FORMAT_VERSION = 1
SUFFIX = ".npz"
#: Readable by the members of the folder's group (the accounts of this workstation), not by others.
FILE_MODE = 0o640
#: A member file larger than this (about 30,000 default blocks, 40 hours of movement) is not read:
#: the folder is writable by other accounts, and one of them must not exhaust this one's memory.
MAX_MEMBER_BYTES = 64 << 20


class CohortError(MouseguardError):
    """The cohort folder cannot be used (missing, not a folder, no permission); one line."""


class MemberError(MouseguardError):
    """One member file that is skipped; the message says why in one line."""


def _warn_stderr(message: str) -> None:
    print(f"mouseguard: warning: {message}", file=sys.stderr, flush=True)


def member_path(folder: str | os.PathLike, user: str) -> Path:
    """The member file of ``user``; a path instead of a name is refused (UserNameError)."""
    return Path(folder).expanduser() / f"{safe_user_name(user)}{SUFFIX}"


def check_folder(folder: str | os.PathLike) -> Path:
    """``folder`` if this account can list, read and write it, else a one-line CohortError."""
    path = Path(folder).expanduser()
    if not path.exists():
        raise CohortError(f"cohort folder {path} does not exist (README: 'Shared workstation: a local cohort')")
    if not path.is_dir():
        raise CohortError(f"cohort folder {path} is not a folder")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise CohortError(f"cohort folder {path}: no permission to read and write it "
                          "(is this account in the folder's group?)")
    return path


# ------------------------------------------------------------------------------- publishing


def _check_blocks(blocks: np.ndarray, spec: BlockSpec) -> np.ndarray:
    if any(f not in FEATURES for f in spec.features):  # FEATURES holds no position channel
        raise ValueError(f"cohort blocks may only hold {FEATURES}, not {spec.features}")
    blocks = np.ascontiguousarray(blocks, dtype=np.float32)
    if blocks.ndim != 3 or blocks.shape[1:] != (spec.channels, spec.size):
        raise ValueError(f"cohort blocks of shape {blocks.shape} were not cut with this spec "
                         f"(expected (n, {spec.channels}, {spec.size}))")
    return blocks


def _spec_json(spec: BlockSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)


def publish(folder: str | os.PathLike, user: str, blocks: np.ndarray, spec: BlockSpec) -> bool:
    """Write ``user``'s member file atomically; False when it already holds the same blocks.

    Unchanged blocks are not rewritten: every other account's agent refits when a member file
    changes, and their refits republish theirs — rewriting the same blocks would keep the
    machine's agents refitting each other forever.
    """
    path = member_path(folder, user)
    check_folder(path.parent)
    blocks = _check_blocks(blocks, spec)
    with contextlib.suppress(MemberError):
        _, existing = read_member(path, spec)
        if np.array_equal(existing, blocks):
            return False
    with atomic_open(path, "wb", permissions=FILE_MODE, shared_folder=True) as f:
        np.savez(f, format=np.array(FORMAT), version=np.array(FORMAT_VERSION), user=np.array(user),
                 spec=np.array(_spec_json(spec)), blocks=blocks)
    return True


# ---------------------------------------------------------------------------------- reading


def _open_member(path: Path) -> bytes:
    """The bytes of a regular file at ``path``, not through a symlink, not blocking on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not hasattr(os, "O_NOFOLLOW") and path.is_symlink():
        raise MemberError("a symlink, not followed")
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if path.is_symlink():
            raise MemberError("a symlink, not followed") from None
        raise MemberError(f"unreadable ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise MemberError("not a regular file")
        if info.st_size > MAX_MEMBER_BYTES:
            raise MemberError(f"{info.st_size} bytes, more than the {MAX_MEMBER_BYTES} a member file may hold")
        return f.read(MAX_MEMBER_BYTES + 1)


def read_member(path: str | os.PathLike, spec: BlockSpec) -> tuple[str, np.ndarray]:
    """The user name and blocks of one member file cut with ``spec``; MemberError says why not."""
    import io

    path = Path(path)
    raw = _open_member(path)
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:  # sizes checked before anything is inflated
            if sum(i.file_size for i in archive.infolist()) > MAX_MEMBER_BYTES:
                raise MemberError(f"unpacks to more than {MAX_MEMBER_BYTES} bytes")
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            fields = {name: z[name] for name in ("format", "version", "user", "spec", "blocks") if name in z.files}
    except MemberError:
        raise
    except Exception as exc:  # zip, npy and pickle-refusal errors alike: a damaged or foreign file
        raise MemberError(f"not a readable member file ({type(exc).__name__}: {exc})") from None
    missing = [n for n in ("format", "version", "user", "spec", "blocks") if n not in fields]
    if missing:
        raise MemberError(f"not a member file (no {', '.join(missing)})")
    if fields["format"].shape != () or str(fields["format"]) != FORMAT:
        raise MemberError("not a mouseguard cohort member file")
    version = fields["version"]
    if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
        raise MemberError(f"format version {fields['version']!s} (this mouseguard reads {FORMAT_VERSION})")
    user = str(fields["user"]) if fields["user"].shape == () else ""
    if f"{user}{SUFFIX}" != path.name:
        raise MemberError(f"holds the blocks of {user!r}, not of the name it has")
    try:
        theirs = BlockSpec.from_dict(json.loads(str(fields["spec"])))
    except (ValueError, TypeError, BlockSpecError) as exc:
        raise MemberError(f"unreadable block spec ({exc})") from None
    if theirs != spec:
        raise MemberError("cut with another block spec than this model's encoder (enrolled with another "
                          "mouseguard version?); ignored until its owner re-enrols")
    blocks = fields["blocks"]
    if blocks.dtype != np.float32 or blocks.ndim != 3 or blocks.shape[1:] != (spec.channels, spec.size):
        raise MemberError(f"blocks of type {blocks.dtype} and shape {blocks.shape} do not match its spec")
    if not np.isfinite(blocks).all():
        raise MemberError("blocks hold values that are not finite numbers")
    return user, blocks


def _block_digests(blocks: np.ndarray) -> set[bytes]:
    blocks = np.ascontiguousarray(blocks, dtype=np.float32)
    return {hashlib.blake2b(b.tobytes(), digest_size=16).digest() for b in blocks}


def read_members(folder: str | os.PathLike, user: str, spec: BlockSpec, *, own_blocks: np.ndarray | None = None,
                 warn: Callable[[str], None] = _warn_stderr) -> dict[str, np.ndarray]:
    """Every other member's blocks cut with ``spec``, by name; ``user``'s own file is left out.

    A file that cannot be used is skipped with one ``warn`` line, never fatal. With
    ``own_blocks``, a file holding any of them is skipped too: someone's copy of your blocks
    under another name would train your model against your own movement.
    """
    folder = Path(folder).expanduser()
    own = _block_digests(own_blocks) if own_blocks is not None and len(own_blocks) else set()
    members: dict[str, np.ndarray] = {}
    for name in sorted(snapshot(folder, user)):
        path = folder / f"{name}{SUFFIX}"
        try:
            _, blocks = read_member(path, spec)
            if own and not own.isdisjoint(_block_digests(blocks)):
                raise MemberError("holds blocks of your own movement")
        except MemberError as exc:
            warn(f"cohort member file {path} skipped: {exc}")
            continue
        if len(blocks):
            members[name] = blocks
    return members


# --------------------------------------------------------------------------- change detection


def snapshot(folder: str | os.PathLike, user: str) -> dict[str, int]:
    """The other members of the folder and their files' modification times (ns): names and
    times only, cheap enough to look every few minutes. Symlinks and other non-files are not
    members. Raises OSError when the folder cannot be listed."""
    present = {}
    with os.scandir(Path(folder).expanduser()) as entries:
        for entry in entries:
            if not entry.name.endswith(SUFFIX):
                continue  # temporary .part files, anything else an administrator keeps there
            name = entry.name[: -len(SUFFIX)]
            try:
                safe_user_name(name)
                if name == user or not entry.is_file(follow_symlinks=False):
                    continue
                present[name] = entry.stat(follow_symlinks=False).st_mtime_ns
            except (UserNameError, OSError):
                continue  # gone meanwhile, or a name no enrolment writes
    return present


def needs_refit(present: Mapping[str, int], trained: Mapping[str, object], model_mtime_ns: int) -> bool:
    """Whether a model trained against the cohort ``trained`` (the manifest's
    ``training.cohort``: name -> blocks), written at ``model_mtime_ns``, is out of date for the
    members ``present`` now (name -> file mtime): someone joined or left, or republished since."""
    return set(present) != set(trained) or any(mtime > model_mtime_ns for mtime in present.values())
