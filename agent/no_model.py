"""What the live agent runs when someone enrolled here but no model can be used.

A model that is missing (once an enrolment record exists), refused (bad hash, changed since
enrolment, out-of-bounds decision settings) or that onnxruntime cannot load gives no valid
score, exactly like a model that outputs NaN. So it goes through the same path: a pipeline whose
every block is a block without a valid score, for the one reason. The rolling decision then says
"not protecting" and acts as on an impostor once ``FAULT_GRACE_SECONDS`` have passed (fail
closed), and after each lock the next movement starts a new grace: the desk stays unusable
for anyone without the password until the owner re-enrols or runs ``mouseguard forget``.
Nothing is recorded meanwhile — learning would enrol whoever is at the mouse.
"""

from __future__ import annotations

import numpy as np

from agent.blocks import BlockCutter, BlockSpec
from agent.decision import RollingDecision
from agent.pipeline import Pipeline


class NoModelPipeline(Pipeline):
    def __init__(self, reason: str, grace_seconds: float = 0.0):
        """``reason``: why there is no usable model (one line, shown as the fault);
        ``grace_seconds``: the agent's grace after a lock, as for any decision."""
        # Blocks are cut only to pace the verdicts by movement, as a model's would be; the
        # default spec is as good as any, since nothing is scored.
        super().__init__(BlockCutter(BlockSpec()), None, RollingDecision(1, 0.5, grace_seconds=grace_seconds))
        self.reason = reason

    def start(self, now: float) -> None:
        """Start the fault's grace at ``now`` (the agent's start), not at the first block."""
        self.decision.invalid(float("nan"), self.reason, now)

    def _score(self, blocks: np.ndarray) -> tuple[np.ndarray, list[str]]:
        return np.full(len(blocks), np.nan), [self.reason] * len(blocks)
