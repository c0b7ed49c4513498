"""Logging for the agent: a private rotating file plus stderr.

The log says when the agent locked the session and why, so it is a record of the user's
presence: files are 0600 like everything else mouseguard writes, including rotated ones.
Rotation (1 MB x 5) bounds the disk an agent that runs for months can use.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from agent import paths

LOG_FILE_NAME = "mouseguard.log"
MAX_BYTES = 1_000_000
BACKUP_COUNT = 5

_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONSOLE_FORMAT = "mouseguard: %(levelname)s: %(message)s"
_OURS = "_mouseguard_handler"  # marks handlers this module installed, so a second call replaces them


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files are created 0600 whatever the umask.

    Rotation renames files (keeping their mode) and then opens a new one through ``_open``,
    so creating it private here covers every file the handler ever writes.
    """

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if hasattr(os, "fchmod"):  # a file made by an older version may be more open
            os.fchmod(fd, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


def setup_logging(
    log_dir: str | os.PathLike, level: str | int = "info", console: bool = True
) -> Path:
    """Send the root logger to ``<log_dir>/mouseguard.log`` (and stderr); return the file.

    Calling it again (tests, a config reload) replaces the handlers it added before instead
    of duplicating every line.
    """
    numeric = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    log_file = paths.ensure(log_dir) / LOG_FILE_NAME

    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()

    handlers: list[logging.Handler] = [
        PrivateRotatingFileHandler(log_file, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8")
    ]
    handlers[0].setFormatter(logging.Formatter(_FILE_FORMAT))
    # Under pythonw (Windows autostart) there is no stderr at all.
    if console and sys.stderr is not None:
        handlers.append(logging.StreamHandler(sys.stderr))
        handlers[-1].setFormatter(logging.Formatter(_CONSOLE_FORMAT))
    for handler in handlers:
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    root.setLevel(numeric)
    return log_file
