"""Private, atomic file writes.

Everything mouseguard writes (models, config, recordings, status) describes one person's
behaviour, so files are 0600 and folders 0700, and a write either lands whole or not at all:
a crash or Ctrl-C never leaves a half-written model or recording behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from agent.errors import MouseguardError


def private_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and missing parents) private to the user (0700).

    A folder that already exists keeps its mode: the parent of a model written to /tmp is
    /tmp, and making that 0700 would break every other user and program on the machine.
    """
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            p.mkdir(mode=0o700)
            os.chmod(p, 0o700)  # mkdir's mode is filtered by the umask
    return path


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", permissions: int = 0o600, shared_folder: bool = False):
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    The folder is made private unless it is ``shared_folder`` (one another account writes to as
    well: it must exist and stays as it is). The temporary file is created with O_EXCL, so a name
    planted there is never opened, and the rename swaps the directory entry itself, so a symlink
    at ``path`` is replaced, not written through.
    """
    path = Path(path)
    if not shared_folder:
        private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # Windows has it only from Python 3.13; there ACLs keep files private
            os.fchmod(fd, permissions)  # the umask does not decide who may read it
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(payload)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_output_folder(path: str | os.PathLike, marker: str | None = None) -> Path:
    """Refuse, in one line and before any work, an output folder that cannot or must not be
    written: a file, a place under a file or without write permission, and — when ``marker``
    is given, for folders that are replaced whole — a non-empty folder without ``marker``
    (the manifest or encoder file mouseguard writes), which is someone's other data."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MouseguardError(f"{path}: is a file, not a folder to write into")
    if marker and path.is_dir() and not (path / marker).exists() and any(path.iterdir()):
        raise MouseguardError(f"{path}: a folder mouseguard did not write (no {marker}), and writing "
                              "replaces it whole; give a new or empty folder")
    existing = path if path.exists() else path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise MouseguardError(f"{path}: {existing} is a file, so no folder can be made there")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MouseguardError(f"{path}: no permission to write in {existing}")
    return path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, marker: str = "manifest.json"):
    """Yield a private staging folder; on success it takes the place of ``path``.

    A previous folder at ``path`` (an older model) stays in place until the new one is
    complete, and is removed only after the swap. The swap is two renames, so a crash
    between them leaves the old folder under ``.<name>.old-*`` rather than losing it
    (:func:`recover_directory` puts it back). Only a folder holding ``marker`` (one this
    function wrote) or an empty one is replaced.
    """
    path = check_output_folder(path, marker)
    private_dir(path.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    os.chmod(staging, 0o700)
    try:
        yield staging
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
        os.replace(staging, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


#: A staging folder this old is left from a killed write, not one being written: atomic_directory
#: fills its staging in seconds (an export and its parity check), so ten minutes is generous.
STALE_STAGING_SECONDS = 600.0
#: tempfile's random part: 8 characters of this alphabet.
_RANDOM = "[a-z0-9_]{8}"


def leftovers(path: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """The staging folders (``.<name>.*.part``) and backups (``.<name>.old-*``) that
    :func:`atomic_directory` made beside ``path``, matched exactly: a user named ``alice.bob``
    has folders of their own beside ``alice``'s, and they are not ``alice``'s leftovers."""
    path = Path(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return [], []
    name = re.escape(path.name)
    staging = [path.parent / n for n in names if re.fullmatch(rf"\.{name}\.{_RANDOM}\.part", n)]
    backups = [path.parent / n for n in names if re.fullmatch(rf"\.{name}\.old-{_RANDOM}", n)]
    return sorted(staging), sorted(backups)


def recover_directory(path: str | os.PathLike, marker: str = "manifest.json",
                      stale_after: float = STALE_STAGING_SECONDS, now: float | None = None) -> list[str]:
    """Undo what a killed :func:`atomic_directory` left beside ``path``; one line per repair.

    Killed between its two renames, the old folder is only under ``.<name>.old-*`` and ``path``
    is gone: it is renamed back (the newest, if several), so a model is never lost to a crash —
    and never mistaken for "no model yet". Backups beside a ``path`` that exists are removed
    (the swap had completed), as are staging folders older than ``stale_after`` seconds: each
    holds a copy of a person's model.
    """
    path = Path(path)
    now = time.time() if now is None else now
    staging, backups = leftovers(path)
    notes = []
    if not path.exists() and not path.is_symlink():
        complete = [b for b in backups if (b / marker).is_file()]
        if complete:
            newest = max(complete, key=lambda b: b.stat().st_mtime)
            try:
                os.replace(newest, path)
                backups.remove(newest)
                notes.append(f"recovered {path} from {newest.name}: a model swap had been interrupted")
            except OSError as exc:
                notes.append(f"cannot recover {path} from {newest.name}: {exc.strerror or exc}")
    if path.exists():
        for b in backups:
            shutil.rmtree(b, ignore_errors=True)
            notes.append(f"removed {b.name}, the previous model left beside {path.name} by an interrupted swap")
    for s in staging:
        try:
            stale = now - s.stat().st_mtime >= stale_after
        except OSError:
            continue
        if stale:
            shutil.rmtree(s, ignore_errors=True)
            notes.append(f"removed {s.name}, a half-written model left beside {path.name} by an interrupted write")
    return notes


def remove_stale_partial_files(folder: str | os.PathLike, stale_after: float = STALE_STAGING_SECONDS,
                               now: float | None = None) -> list[str]:
    """Remove the temporary files a killed :func:`atomic_open` left in ``folder``
    (``.<name>.<random>.part``, older than ``stale_after`` seconds); one line per file. A recorder
    killed mid-checkpoint leaves one, holding a person's movement that no reader ever lists."""
    folder = Path(folder)
    now = time.time() if now is None else now
    notes = []
    try:
        names = os.listdir(folder)
    except OSError:
        return notes
    for name in names:
        path = folder / name
        if not re.fullmatch(rf"\..+\.{_RANDOM}\.part", name) or not path.is_file() or path.is_symlink():
            continue
        try:
            if now - path.stat().st_mtime >= stale_after:
                path.unlink()
                notes.append(f"removed {path}, a half-written file left by an interrupted write")
        except OSError:
            continue
    return notes
