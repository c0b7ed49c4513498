"""What a locker reports back.

Every locker answers with a :class:`LockResult` instead of raising, because the caller (the
:class:`~agent.responses.actor.Actor`) must turn *any* failure into a visible alert: a lock that
silently did nothing is the one failure a security agent cannot afford.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class LockResult:
    """``ok`` is True only when the OS accepted (and, where it can tell us, confirmed) the lock.

    ``detail`` is for humans and the log: which mechanism worked, or every mechanism that was
    tried and why each one failed.
    """

    ok: bool
    detail: str


#: A locker is any zero-argument callable returning a LockResult (the per-OS classes, or a
#: lambda in tests). It should not raise, but the Actor copes if it does.
Locker = Callable[[], LockResult]
