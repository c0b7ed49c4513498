"""The features family (Youssef & Mahdi, 2025): 30 segment features -> dense network.

Preprocessing is scikit-learn's ``QuantileTransformer`` (uniform output) then ``MinMaxScaler``,
both fitted on training rows only. The network is 128-64-32, each layer Linear -> batch norm ->
swish -> dropout (0.3, 0.3, 0.2), with a softmax over the classes; training uses class weights
(balanced), Adam, ``ReduceLROnPlateau`` and early stopping on a validation split of the
training rows (restoring the best weights).

Two uses:

* :class:`SegmentIdentifier` — the paper's multi-class identifier of many users (with an
  optional *unknown* class synthesised by the CGAN of ``training.families.features.cgan``, for open-set rejection);
* :class:`FeaturesModel` — one user's authenticator for the agent: the same identifier
  over the genuine user (class 0), the impostor users it trains against and the synthetic
  unknowns; ``P(genuine)`` is the softmax of class 0.

For export the fitted scalers are folded into a torch module (:class:`QuantileMinMax`), so
the whole scoring path — features in, P(genuine) out — is one network and one ONNX file.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch import nn

from agent.segment_features import FEATURE_NAMES, KIND as SEGMENT_KIND, SegmentSpec
from training.families.features.cgan import CGANConfig, UnknownSynthesiser
from training.errors import FitError
from training.families.torch_setup import prepare_torch

INPUT_NAME = "features"
OUTPUT_NAME = "p_genuine"


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    max_epochs: int = 100
    patience: int = 8
    lr: float = 1e-3
    batch: int = 256
    validation: float = 0.1
    seed: int = 0
    n_quantiles: int = 1000
    #: Synthetic unknowns per known class (on average); 0 = no CGAN, closed set.
    unknown_per_class: float = 1.0
    cgan_epochs: int = 20
    threads: int = 1


class SegmentMLP(nn.Module):
    """30 features -> 128 -> 64 -> 32 -> classes (logits)."""

    def __init__(self, n_features: int, n_classes: int, widths=(128, 64, 32), dropouts=(0.3, 0.3, 0.2)):
        super().__init__()
        layers, width = [], n_features
        for w, p in zip(widths, dropouts):
            layers += [nn.Linear(width, w), nn.BatchNorm1d(w), nn.SiLU(), nn.Dropout(p)]
            width = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class QuantileMinMax(nn.Module):
    """scikit-learn's fitted ``QuantileTransformer`` (uniform) + ``MinMaxScaler`` in torch.

    The quantile map is piecewise linear between the fitted quantiles ``q_k`` and their
    references ``r_k``: a ramp where ``q_{k+1} > q_k`` and a jump where quantiles repeat (a
    feature with many equal values, e.g. no clicks). scikit-learn averages interpolation
    from both sides, so on a repeated quantile the output is the middle of the jump; here the
    jump is counted half for ``x == q_k`` (``x >= q_k`` and ``x > q_k`` averaged). Values equal
    to the first / last quantile map to exactly 0 / 1, also as scikit-learn does.
    """

    def __init__(self, quantile, minmax):
        super().__init__()
        q = np.asarray(quantile.quantiles_, np.float64).T  # (features, K)
        r = np.asarray(quantile.references_, np.float64)
        width = np.diff(q, axis=1)
        rise = np.diff(r)[None, :].repeat(len(q), axis=0)
        ramp = width > 0
        slope = np.divide(rise, width, out=np.zeros_like(width), where=ramp)
        as_f32 = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        self.register_buffer("knots", as_f32(q[:, :-1]))
        self.register_buffer("width", as_f32(np.where(ramp, width, 0.0)))
        self.register_buffer("slope", as_f32(slope))
        self.register_buffer("jump", as_f32(np.where(ramp, 0.0, rise)))
        self.register_buffer("first", as_f32(q[:, 0]))
        self.register_buffer("last", as_f32(q[:, -1]))
        self.register_buffer("r0", as_f32(r[0]))
        self.register_buffer("scale", as_f32(minmax.scale_))
        self.register_buffer("offset", as_f32(minmax.min_))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.unsqueeze(2) - self.knots
        ramps = (torch.minimum(torch.clamp(d, min=0.0), self.width) * self.slope).sum(2)
        jumps = 0.5 * (((d >= 0).to(x.dtype) + (d > 0).to(x.dtype)) * self.jump).sum(2)
        u = self.r0 + ramps + jumps
        u = torch.where(x == self.last, torch.ones_like(u), u)
        u = torch.where(x == self.first, torch.zeros_like(u), u)
        return u * self.scale + self.offset


class FoldedGenuineProbability(nn.Module):
    """What ships in ONNX: features ``(n, 30)`` -> P(genuine) ``(n,)``."""

    def __init__(self, preprocess: QuantileMinMax, network: SegmentMLP, genuine: int = 0):
        super().__init__()
        self.preprocess = preprocess
        self.network = network
        self.genuine = genuine

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(self.preprocess(features)), dim=1)[:, self.genuine]


def train_network(x: np.ndarray, y: np.ndarray, n_classes: int, cfg: MLPConfig, log=None) -> SegmentMLP:
    """Adam with class weights; ReduceLROnPlateau and early stopping on a validation split."""
    prepare_torch(cfg.seed, cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(x))
    n_val = max(1, int(len(x) * cfg.validation))
    val, train = order[:n_val], order[n_val:]
    counts = np.bincount(y[train], minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(train) / (n_classes * np.maximum(counts, 1)), 0.0)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    model = SegmentMLP(x.shape[1], n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, cfg.patience // 3))
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)
    best, best_state, stale = float("inf"), None, 0
    for epoch in range(cfg.max_epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(train))
        for start in range(0, len(perm), cfg.batch):
            idx = perm[start:start + cfg.batch]
            if len(idx) < 2:  # batch norm needs two rows
                continue
            loss = loss_fn(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(model(xt[val]), yt[val]))
        plateau.step(val_loss)
        if val_loss < best - 1e-4:
            best, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
        if log:
            log(f"epoch {epoch + 1}: validation loss {val_loss:.4f}")
        if stale >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model


class SegmentIdentifier:
    """Multi-class identifier of segments: ``fit(features, labels)``, ``predict_proba``.

    With ``cfg.unknown_per_class > 0`` an extra last class holds CGAN-synthesised unknowns.
    """

    def __init__(self, cfg: MLPConfig = MLPConfig()):
        self.cfg = cfg

    def fit(self, features: np.ndarray, labels: np.ndarray, log=None) -> "SegmentIdentifier":
        from sklearn.preprocessing import MinMaxScaler, QuantileTransformer

        cfg = self.cfg
        features = np.asarray(features, np.float32)
        if len(features) < 10:
            raise FitError(f"too few segments to train on ({len(features)})")
        self.n_known = int(labels.max()) + 1
        self.quantile = QuantileTransformer(n_quantiles=min(cfg.n_quantiles, len(features)),
                                            output_distribution="uniform", random_state=cfg.seed)
        u = self.quantile.fit_transform(features)
        self.minmax = MinMaxScaler()
        x = self.minmax.fit_transform(u).astype(np.float32)
        y = labels.astype(np.int64)
        self.unknown_class = None
        if cfg.unknown_per_class > 0:
            prepare_torch(cfg.seed, cfg.threads)
            synth = UnknownSynthesiser(CGANConfig(epochs=cfg.cgan_epochs, seed=cfg.seed)).fit(x, y)
            n = int(round(cfg.unknown_per_class * len(x) / self.n_known))
            self.unknown_class = self.n_known
            x = np.concatenate((x, synth.sample(max(n, 2), seed=cfg.seed)))
            y = np.concatenate((y, np.full(max(n, 2), self.unknown_class)))
        self.n_classes = self.n_known + (self.unknown_class is not None)
        self.network = train_network(x, y, self.n_classes, cfg, log=log)
        self.preprocess = QuantileMinMax(self.quantile, self.minmax).eval()
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        return self.minmax.transform(self.quantile.transform(np.asarray(features, np.float32))).astype(np.float32)

    def predict_proba(self, features: np.ndarray, batch: int = 4096) -> np.ndarray:
        if len(features) == 0:
            return np.empty((0, self.n_classes))
        x = self.transform(features)
        with torch.no_grad():
            return np.concatenate([torch.softmax(self.network(torch.from_numpy(x[i:i + batch])), 1).numpy()
                                   for i in range(0, len(x), batch)])


class FeaturesModel:
    """One user's authenticator: genuine (class 0) vs the impostor users vs synthetic unknowns."""

    name = "features"
    input_kind = SEGMENT_KIND
    row = "segment"

    def __init__(self, cfg: MLPConfig = MLPConfig()):
        self.cfg = cfg

    def fit(self, genuine: np.ndarray, impostors: list[np.ndarray], log=None) -> "FeaturesModel":
        impostors = [i for i in impostors if len(i)]
        if len(genuine) == 0:
            raise FitError("no segments of the user to learn from")
        if not impostors:
            raise FitError("no impostor segments to learn against")
        x = np.concatenate([genuine] + impostors)
        y = np.concatenate([np.zeros(len(genuine), np.int64)] +
                           [np.full(len(r), k + 1, np.int64) for k, r in enumerate(impostors)])
        self.identifier = SegmentIdentifier(self.cfg).fit(x, y, log=log)
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        """P(genuine) per segment (torch side, scikit-learn preprocessing)."""
        if len(features) == 0:
            return np.empty(0)
        return self.identifier.predict_proba(features)[:, 0]

    def scoring_module(self) -> FoldedGenuineProbability:
        return FoldedGenuineProbability(self.identifier.preprocess, self.identifier.network).eval()

    def score_folded(self, features: np.ndarray) -> np.ndarray:
        """P(genuine) through the folded torch module, i.e. what is exported to ONNX."""
        with torch.no_grad():
            return self.scoring_module()(torch.tensor(features, dtype=torch.float32)).numpy()

    def to_onnx(self) -> bytes:
        import io

        module = self.scoring_module()
        batch = torch.export.Dim("batch", min=1)
        program = torch.onnx.export(module, (torch.zeros(2, len(FEATURE_NAMES)),), dynamo=True,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: batch},), external_data=False, verbose=False)
        buffer = io.BytesIO()
        program.save(buffer, external_data=False)
        return buffer.getvalue()

    def export_fields(self, parity_rows: np.ndarray) -> dict:
        """What :func:`agent.model_dir.write_model_dir` needs beyond the user-model path's fields:
        parity against the folded torch module, which is what is exported."""
        return {
            "family": self.name, "architecture": "segment-features-mlp-128-64-32+cgan-unknown",
            "input_spec": {"name": INPUT_NAME, "kind": SEGMENT_KIND, "params": SegmentSpec().to_dict(),
                           "shape": [None, len(FEATURE_NAMES)], "features": list(FEATURE_NAMES)},
            "output": {"meaning": "P(genuine) for each 50-event segment: softmax of the enrolled user's class"},
            "parity_rows": parity_rows, "reference": self.score_folded, "reference_name": "torch",
        }
