"""The patterns family (Shen et al.): frequent behaviour patterns + a one-class detector.

Enrolment needs the user's own recordings only — no impostor pool:

1. actions and operations from the user's events (``agent.mouse_actions``,
   ``agent.pattern_features``); the 3x3 grid spans the 1st–99th percentile of their positions;
2. the sequence database (chunks of operations between silences) is mined with PrefixSpan for
   patterns of ``min_len``–``max_len`` operations held by at least ``min_support`` of the
   chunks; the ``n_patterns`` most supported become the model's vocabulary;
3. each window of actions becomes a row describing how those patterns went (rate, duration,
   speed, click time, straightness); rows of the user train a one-class detector after a
   median imputer and a standard scaler (scikit-learn): one-class SVM, isolation forest or
   local outlier factor (novelty mode);
4. the detector's decision value ``f`` (higher = more typical of the user) becomes a score in
   [0, 1] by a logistic map ``sigmoid((f - f05) / s)`` fixed on held-out genuine rows: 0.5 at
   their 5th percentile ``f05``, 0.95 at their median. Monotone, so it changes no ranking.

:meth:`PatternsModel.to_onnx` writes the whole scoring path (imputer, scaler, detector, map)
as one ONNX graph; the extractor's parameters (patterns, bounds, window) go in the manifest.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agent.mouse_actions import SI, ActionSpec, segment_actions
from agent.pattern_features import KIND as PATTERN_KIND
from agent.pattern_features import PER_PATTERN, PatternSpec, chunks, extract_patterns, operations, rows_from_actions
from training.errors import FitError
from training.families.patterns.prefixspan import prefixspan

DETECTORS = ("ocsvm", "iforest", "lof")
INPUT_NAME = "patterns"
OUTPUT_NAME = "p_genuine"
#: logit(0.95): the genuine median maps to 0.95.
_LOGIT_95 = float(np.log(19.0))


@dataclasses.dataclass(frozen=True)
class PatternsConfig:
    detector: str = "ocsvm"
    n_patterns: int = 12
    min_support: float = 0.05
    #: 1 keeps single operations as patterns: on SapiMouse, pairs alone gave row AUC 0.52 vs 0.63.
    min_len: int = 1
    max_len: int = 3
    window: int = 16
    #: Live stride (in the manifest) and the denser stride used for training rows.
    stride: int = 2
    train_stride: int = 2
    seq_max: int = 8
    nu: float = 0.1
    seed: int = 0
    #: Fraction of each genuine run (its tail) held out to fix the score map.
    map_holdout: float = 0.2


def screen_bounds(actions: list[np.ndarray]) -> tuple[float, float, float, float]:
    a = np.concatenate([x[x["kind"] != SI] for x in actions]) if actions else np.zeros(0)
    if len(a) < 2:
        raise FitError("too few mouse actions to learn screen areas from")
    x0, x1 = np.percentile(a["x"], [1, 99])
    y0, y1 = np.percentile(a["y"], [1, 99])
    return (float(x0), float(max(x1, x0 + 1)), float(y0), float(max(y1, y0 + 1)))


def mine_patterns(actions: list[np.ndarray], bounds, cfg: PatternsConfig) -> list[tuple[tuple[int, ...], int, int]]:
    """Frequent patterns ``(pattern, support, n_sequences)`` of the user's sequence database."""
    db = []
    for acts in actions:
        ops = operations(acts, bounds)
        db += [ops[c].tolist() for c in chunks(ops, cfg.seq_max)]
    if not db:
        raise FitError("no action sequences to mine patterns from")
    min_count = max(2, int(np.ceil(cfg.min_support * len(db))))
    found = prefixspan(db, min_count, max_len=cfg.max_len, min_len=cfg.min_len)
    if not found:
        raise FitError(f"no behaviour pattern occurs in {cfg.min_support:.0%} of {len(db)} action sequences")
    return [(p, s, len(db)) for p, s in found[: cfg.n_patterns]]


def _detector(cfg: PatternsConfig):
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.svm import OneClassSVM

    if cfg.detector == "ocsvm":
        return OneClassSVM(kernel="rbf", gamma="scale", nu=cfg.nu)
    if cfg.detector == "iforest":
        return IsolationForest(n_estimators=200, random_state=cfg.seed)
    if cfg.detector == "lof":
        return LocalOutlierFactor(n_neighbors=20, novelty=True)
    raise FitError(f"unknown detector {cfg.detector!r} (choose from {', '.join(DETECTORS)})")


def _split(run: np.ndarray, fraction: float):
    cut = len(run) - int(round(len(run) * fraction))
    return run[:cut], run[cut:]


class PatternsModel:
    """One user's pattern spec and one-class detector; ``score`` gives values in [0, 1]."""

    name = "patterns"
    input_kind = PATTERN_KIND
    row = "window"

    def __init__(self, cfg: PatternsConfig = PatternsConfig()):
        self.cfg = cfg

    def fit(self, genuine_events: list[np.ndarray], impostors=()) -> "PatternsModel":
        """Learn the user from their recordings (event arrays) alone: a one-class detector has
        no use for ``impostors`` (taken for the family interface's sake)."""
        return self.fit_actions([segment_actions(e, ActionSpec()) for e in genuine_events])

    def fit_actions(self, actions: list[np.ndarray]) -> "PatternsModel":
        """Learn the user from their recordings' actions (``segment_actions`` with ``ActionSpec()``)."""
        cfg = self.cfg
        bounds = screen_bounds(actions)
        mined = mine_patterns(actions, bounds, cfg)
        self.patterns_info = [{"pattern": list(p), "support": s, "sequences": n} for p, s, n in mined]
        self.spec = PatternSpec(tuple(p for p, _, _ in mined), bounds, cfg.window, cfg.stride, cfg.seq_max)
        train_spec = dataclasses.replace(self.spec, stride=cfg.train_stride)
        runs = [rows_from_actions(a, train_spec, short_files=True)[0] for a in actions]
        fit_rows, map_rows = zip(*(_split(r, cfg.map_holdout) for r in runs))
        fit_rows, map_rows = np.concatenate(fit_rows), np.concatenate(map_rows)
        if len(fit_rows) < 10 or len(map_rows) < 3:
            raise FitError(f"too little data: {len(fit_rows) + len(map_rows)} windows of {cfg.window} actions "
                           f"(at least 13 are needed)")
        # A pattern feature never seen in training has no median to impute: 0 stands in.
        fit_rows[:, np.isnan(fit_rows).all(axis=0)] = 0.0
        self._rows = (fit_rows, map_rows)
        return self._fit_detector()

    def with_detector(self, detector: str) -> "PatternsModel":
        """The same patterns and training windows with another detector (no re-mining)."""
        other = PatternsModel(dataclasses.replace(self.cfg, detector=detector))
        other.spec, other.patterns_info, other._rows = self.spec, self.patterns_info, self._rows
        return other._fit_detector()

    def _fit_detector(self) -> "PatternsModel":
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        fit_rows, map_rows = self._rows
        self.pipeline = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), _detector(self.cfg))
        self.pipeline.fit(fit_rows)
        f = self.pipeline.decision_function(map_rows)
        f05, f50 = np.percentile(f, [5, 50])
        self.offset = float(f05)
        self.scale = float(max((f50 - f05) / _LOGIT_95, 1e-6 * max(1.0, abs(f50))))
        self.n_train_rows = int(len(fit_rows))
        self.n_map_rows = int(len(map_rows))
        return self

    def rows(self, events: np.ndarray, short_files: bool = True) -> np.ndarray:
        """Input rows of a recording with the live spec."""
        return extract_patterns(events, self.spec, short_files)[0]

    def rows_from_actions(self, actions: np.ndarray, short_files: bool = True) -> np.ndarray:
        return rows_from_actions(actions, self.spec, short_files)[0]

    def decision(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.empty(0)
        return self.pipeline.decision_function(rows.astype(np.float32))

    def score(self, rows: np.ndarray) -> np.ndarray:
        z = (self.decision(rows) - self.offset) / self.scale
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow

    def to_onnx(self) -> bytes:
        return self.onnx_model().SerializeToString()

    def export_fields(self, parity_rows: np.ndarray) -> dict:
        """What :func:`agent.model_dir.write_model_dir` needs beyond the user-model path's fields:
        parity against scikit-learn's scores, to 1e-4 (skl2onnx computes in float32)."""
        return {
            "family": self.name, "architecture": f"action-patterns+{self.cfg.detector}",
            "input_spec": {"name": INPUT_NAME, "kind": PATTERN_KIND, "params": self.spec.to_dict(),
                           "shape": [None, self.spec.width],
                           "features": [f"p{j}_{f}" for j in range(len(self.spec.patterns)) for f in PER_PATTERN]},
            "output": {"meaning": ("genuine-likeness of each window of actions in [0, 1]: logistic map of the "
                                   "one-class decision value, 0.5 at the 5th percentile of held-out genuine "
                                   "windows, 0.95 at their median")},
            "parity_rows": parity_rows, "reference": lambda rows: self.score(rows).astype(np.float32),
            "tolerance": 1e-4, "reference_name": "scikit-learn",
        }

    def onnx_model(self):
        """The scoring path as one ONNX model: rows ``(n, width)`` -> ``p_genuine (n,)``."""
        from onnx import TensorProto, helper
        from skl2onnx import to_onnx

        example = np.zeros((1, self.spec.width), np.float32)
        model = to_onnx(self.pipeline, example, target_opset={"": 18, "ai.onnx.ml": 3})
        graph = model.graph
        (input_,) = graph.input
        input_.name, old_input = INPUT_NAME, input_.name
        for node in graph.node:
            node.input[:] = [INPUT_NAME if i == old_input else i for i in node.input]
        scores = next(o.name for o in graph.output if o.name == "scores")
        graph.initializer.extend([
            helper.make_tensor("map_offset", TensorProto.FLOAT, [], [self.offset]),
            helper.make_tensor("map_scale", TensorProto.FLOAT, [], [self.scale]),
            helper.make_tensor("flat_shape", TensorProto.INT64, [1], [-1]),
        ])
        graph.node.extend([
            helper.make_node("Reshape", [scores, "flat_shape"], ["score_flat"]),
            helper.make_node("Sub", ["score_flat", "map_offset"], ["score_centred"]),
            helper.make_node("Div", ["score_centred", "map_scale"], ["score_logit"]),
            helper.make_node("Sigmoid", ["score_logit"], [OUTPUT_NAME]),
        ])
        del graph.output[:]
        graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None]))
        return model
