"""The training package's one error type for a fit that cannot go ahead."""

from __future__ import annotations

from agent.errors import MouseguardError


class FitError(MouseguardError, ValueError):
    """Fitting cannot go ahead (no data, wrong encoder); the message says why in one line."""
