"""Everything after the hook: events -> block cutter -> scorer -> rolling decision.

The same :class:`Pipeline` runs live (fed by the ring buffer on its own thread, so the hook
never waits for scoring) and in ``replay``/``demo``/benchmarks (fed from a recording), so
what a replay shows is what the agent would have done.

Scores enter the decision here, and only here, so this is where they are checked: a block
whose score is not a P(genuine) in [0, 1] (NaN, inf, 1.5: a broken or tampered model), or a
batch the scorer could not score (onnxruntime raising), goes to the decision as a block without
a valid score — "not protecting", then acted on as an impostor (``RollingDecision.invalid``).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time

import numpy as np

from agent.decision import RollingDecision, Verdict
from agent.events import EVENT_DTYPE
from agent.model_dir import ModelDir
from agent.model_inputs import make_extractor


@dataclasses.dataclass(frozen=True)
class BlockVerdict:
    """One scored block: when it ended (event clock), its index, and the decision after it."""

    t: float
    index: int
    verdict: Verdict
    #: The block scored (None between blocks): what the agent may keep for a template update.
    block: np.ndarray | None = None


class Pipeline:
    def __init__(self, cutter, scorer, decision: RollingDecision):
        """``cutter``: the block cutter, or any extractor with its push/flush contract."""
        self.cutter = cutter
        self.scorer = scorer
        self.decision = decision
        self.blocks_scored = 0
        #: Key presses from the keyboard listener's thread, folded into the decision on the
        #: pipeline's own (deque appends and pops are atomic): the decision is not thread-safe.
        self._keys: collections.deque[float] = collections.deque()

    def key_pressed(self, now: float) -> None:
        """Keyboard input at ``now`` (any thread): judged on time like mouse input."""
        self._keys.append(now)

    def _fold_keys(self) -> None:
        while self._keys:
            self.decision.activity(self._keys.popleft())

    def feed(self, events: np.ndarray) -> list[BlockVerdict]:
        """Push events; score the blocks they complete (in one batch) and decide on each."""
        self._fold_keys()
        if len(events):  # input, whether or not it makes a block (judging time: RollingDecision.activity)
            self.decision.activity(float(events["t"][0]))
            self.decision.activity(float(events["t"][-1]))
        blocks, ends = self.cutter.push(events)
        if len(blocks) == 0:
            return []
        scores, faults = self._score(blocks)
        out = []
        for block, t, s, fault in zip(blocks, ends.tolist(), scores.tolist(), faults):
            self.blocks_scored += 1
            verdict = self.decision.invalid(s, fault, now=t) if fault else self.decision.update(s, now=t)
            out.append(BlockVerdict(t, self.blocks_scored, verdict, block))
        return out

    def tick(self, now: float) -> list[BlockVerdict]:
        """Between blocks: the verdict that acts when no valid score has come for the decision's
        fault grace by ``now`` (event clock), so a broken model locks even if the mouse stops."""
        self._fold_keys()
        verdict = self.decision.expire(now)
        return [] if verdict is None else [BlockVerdict(now, self.blocks_scored, verdict)]

    def _score(self, blocks: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """P(genuine) per block, and per block why it cannot be judged ("" when it can)."""
        n = len(blocks)
        try:
            scores = np.asarray(self.scorer.score(blocks), dtype=np.float64).reshape(-1)
        except Exception as exc:  # onnxruntime raises its own types; any failure here is the model's
            return np.full(n, np.nan), [f"scoring failed: {_one_line(exc)}"] * n
        if len(scores) != n:
            return np.full(n, np.nan), [f"the model gave {len(scores)} scores for {n} blocks"] * n
        faults = [""] * n
        # Written so that NaN fails the test too (every comparison with NaN is False).
        for i in np.flatnonzero(~((scores >= 0.0) & (scores <= 1.0))).tolist():
            faults[i] = f"the model gave the score {scores[i]:g}, not a P(genuine) in [0, 1]"
        return scores, faults


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or "no message"
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def make_pipeline(model: ModelDir, scorer, window: int | None = None, threshold: float | None = None,
                  grace_seconds: float = 0.0, unjudged_seconds: float | None = None) -> Pipeline:
    """The pipeline a model directory asks for: its extractor, ``scorer``, and a rolling decision
    with the model's window and threshold unless given (the live agent and every replay)."""
    decision = RollingDecision(window or model.decision.window,
                               threshold if threshold is not None else model.decision.threshold,
                               grace_seconds=grace_seconds, unjudged_seconds=unjudged_seconds)
    return Pipeline(make_extractor(model), scorer, decision)


_NO_EVENTS = np.zeros(0, dtype=EVENT_DTYPE)


class PipelineThread(threading.Thread):
    """Drains the ring buffer and feeds the pipeline; sleeps while there is no input."""

    def __init__(self, buffer, pipeline: Pipeline, on_verdicts, on_error, poll: float = 0.5,
                 gather: float = 0.25, clock=time.monotonic, on_input=None):
        """``clock``: the hook's event clock, so a fault's grace (:meth:`Pipeline.tick`) runs
        out in the same time the blocks are stamped in. ``on_input(events, injected, now)``:
        every drain that is judged, with the OS's injected flag of each event (also with no
        events at each tick), for the injected-input judge (agent/injected_input.py)."""
        super().__init__(name="mouseguard-pipeline", daemon=True)
        self.buffer = buffer
        self.pipeline = pipeline
        self.on_verdicts = on_verdicts
        self.on_error = on_error
        self.poll = poll
        #: After input arrives, let more arrive for this long before draining. Waking per event
        #: (125/s from a moving hand) cost ~10x the CPU of cutting and scoring in chunks
        #: (bench: 1.30 -> 0.13 CPU-s per minute of input); a block needs seconds of movement,
        #: so deciding a quarter of a second later changes nothing.
        self.gather = gather
        self.clock = clock
        self.on_input = on_input
        self._stop_event = threading.Event()
        #: While paused, input is drained and thrown away: nothing is judged.
        self.paused = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            if not self.buffer.wait(self.poll):
                self._tick()
                continue
            if self.gather:
                self._stop_event.wait(self.gather)  # returns at once on stop
            events, injected = self.buffer.drain()
            if self.paused.is_set() or len(events) == 0:
                continue
            if self.on_input is not None:
                self.on_input(events, injected, self.clock())
            try:
                verdicts = self.pipeline.feed(events)
            except Exception as exc:  # a cutter failure must surface as "not protecting", not vanish
                self.on_error(exc)
                continue
            if verdicts:
                self.on_verdicts(verdicts)
            self._tick()

    def _tick(self) -> None:
        if self.paused.is_set():
            return
        if self.on_input is not None:
            self.on_input(_NO_EVENTS, None, self.clock())
        verdicts = self.pipeline.tick(self.clock())
        if verdicts:
            self.on_verdicts(verdicts)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_event.set()
        self.join(timeout)
