"""The states a user can see, and the colour the tray shows for each.

A security agent never stops protecting silently: every way it can fail to protect has a
state of its own, shown in the tray and in ``mouseguard status``.
"""

from __future__ import annotations

NOT_ENROLLED = "not enrolled"
LEARNING = "learning"
PROTECTED = "protected"
SUSPICIOUS = "suspicious"
LOCKED = "locked"
ALERTED = "alerted"
PAUSED = "paused"
NOT_PROTECTING = "not protecting"

STATES = (NOT_ENROLLED, LEARNING, PROTECTED, SUSPICIOUS, LOCKED, ALERTED, PAUSED, NOT_PROTECTING)

#: RGB per state: green is the only colour that means "you are covered".
COLOURS = {
    NOT_ENROLLED: (128, 128, 128),
    LEARNING: (52, 120, 246),
    PROTECTED: (40, 167, 69),
    SUSPICIOUS: (255, 170, 0),
    LOCKED: (220, 53, 69),
    ALERTED: (220, 53, 69),
    PAUSED: (108, 117, 125),
    NOT_PROTECTING: (111, 66, 193),
}
