"""The features and patterns families end to end: fit -> one ONNX file -> score / replay via the CLI."""

import json

import numpy as np
import pytest

from agent.cli import main
from agent.model_dir import load_model_dir
from agent.model_inputs import extract_all, make_extractor
from agent.pattern_features import PatternExtractor, PatternSpec, extract_patterns
from agent.recordings import read_recording, write_recording
from agent.scorer import Scorer
from tests.synth import synth_events

USERS = ("alice", "bob", "carol")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("recordings")
    for u, user in enumerate(USERS):
        for k in range(3):
            write_recording(root / user / f"s{k}.csv", synth_events(user, seconds=400, seed=10 * u + k))
    return root


def fit(dataset, out, family, *extra):
    rc = main(["train", "fit", "--dataset", "recording", "--data", str(dataset), "--user", "alice",
               "--out", str(out), "--model-family", family, *extra])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def features_model(dataset, tmp_path_factory):
    return fit(dataset, tmp_path_factory.mktemp("m") / "features", "features", "--epochs", "8")


@pytest.fixture(scope="module")
def patterns_model(dataset, tmp_path_factory):
    return fit(dataset, tmp_path_factory.mktemp("m") / "patterns", "patterns")


@pytest.mark.parametrize("family", ["features", "patterns"])
def test_model_dir_manifest(family, features_model, patterns_model):
    path = features_model if family == "features" else patterns_model
    md = load_model_dir(path)
    m = md.manifest
    assert m["family"] == family and m["user"] == "alice" and md.spec is None
    kind = {"features": "segment-features", "patterns": "action-patterns"}[family]
    assert md.input_kind == kind and m["onnx"]["input"]["params"]
    assert len(m["onnx"]["input"]["features"]) == m["onnx"]["input"]["shape"][1]
    assert m["onnx"]["parity_max_abs_diff"] <= (1e-5 if family == "features" else 1e-4)
    assert 1 <= md.decision.window and 0 <= md.decision.threshold <= 1
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "model.onnx"]  # one ONNX file
    for p in [path, path / "model.onnx", path / "manifest.json"]:
        assert p.stat().st_mode & 0o077 == 0


def test_features_onnx_parity_and_folded_scalers(features_model, dataset):
    import torch

    from agent.segment_features import extract_segments
    from training.families.features.mlp import MLPConfig, QuantileMinMax, SegmentIdentifier

    md = load_model_dir(features_model)
    rows = np.concatenate([extract_segments(read_recording(dataset / u / "s2.csv"))[0] for u in USERS])
    p = Scorer(md).score(rows)
    assert p.shape == (len(rows),) and ((p >= 0) & (p <= 1)).all()
    assert md.manifest["training"]["preprocessing_fold_max_abs_diff"] <= 1e-4
    # The folded QuantileTransformer + MinMaxScaler equal scikit-learn's, ties included.
    ident = SegmentIdentifier(MLPConfig(max_epochs=1, unknown_per_class=0, n_quantiles=50))
    y = np.arange(len(rows)) % 3
    ident.fit(rows, y)
    with torch.no_grad():
        folded = QuantileMinMax(ident.quantile, ident.minmax)(torch.from_numpy(rows)).numpy()
    np.testing.assert_allclose(folded, ident.transform(rows), atol=1e-5)
    assert (rows[:, 17] == 0).any()  # click_interval_std: many exact ties at a repeated quantile


def test_patterns_onnx_parity(patterns_model, dataset):
    from agent.model_dir import onnx_scores

    md = load_model_dir(patterns_model)
    spec = PatternSpec.from_dict(md.manifest["onnx"]["input"]["params"])
    rows = np.concatenate([extract_patterns(read_recording(dataset / u / "s2.csv"), spec)[0] for u in USERS])
    assert np.isnan(rows).any()  # absent patterns reach the model as NaN: its imputer fills them
    p = onnx_scores(md.onnx_path, md.input_name, rows)
    np.testing.assert_allclose(Scorer(md).score(rows), p)
    assert ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize("family", ["features", "patterns"])
def test_score_and_replay_cli(family, features_model, patterns_model, dataset, tmp_path, capsys):
    model = features_model if family == "features" else patterns_model
    empty = tmp_path / "empty.csv"
    empty.write_text("client timestamp,button,state,x,y\n")
    files = [dataset / u / "s2.csv" for u in USERS] + [empty]
    assert main(["score", "--model", str(model)] + [str(f) for f in files]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0] == "file,blocks,score" and len(rows) == 1 + len(files)
    scores = [float(r.split(",")[2]) for r in rows[1:4]]
    assert scores[0] > max(scores[1:])  # the enrolled user's held-back session scores highest
    assert rows[4].split(",")[1:] == ["0", ""]
    assert main(["replay", "--model", str(model), str(dataset / "bob" / "s2.csv")]) == 0
    out = capsys.readouterr().out
    assert "lock(s)" in out or "never locked" in out


@pytest.mark.parametrize("family", ["features", "patterns"])
def test_streaming_extractor_equals_batch(family, features_model, patterns_model, dataset):
    md = load_model_dir(features_model if family == "features" else patterns_model)
    events = read_recording(dataset / "carol" / "s1.csv")
    batch, batch_t = extract_all(md, events)
    assert len(batch) > 10
    rng = np.random.default_rng(2)
    ex, parts, times, i = make_extractor(md), [], [], 0
    while i < len(events):
        n = int(rng.integers(1, 60))
        x, t = ex.push(events[i:i + n])
        parts.append(x)
        times.append(t)
        i += n
    x, t = ex.flush()
    parts.append(x)
    times.append(t)
    np.testing.assert_allclose(np.concatenate(parts), batch, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.concatenate(times), batch_t)


def test_pattern_rows_every_stride_actions():
    spec = PatternSpec(patterns=((27,), (30, 30)), bounds=(0, 1280, 0, 800), window=4, stride=2)
    ex = PatternExtractor(spec)
    rows, ends = ex.push(synth_events("bob", seconds=60, seed=3))
    tail, _ = ex.flush()
    from agent.mouse_actions import SI, segment_actions

    n_actions = int(np.sum(segment_actions(synth_events("bob", seconds=60, seed=3))["kind"] != SI))
    assert len(rows) + len(tail) == (n_actions - 4) // 2 + 1
    assert rows.shape[1] == 10 and (np.diff(ends) >= 0).all()
    rate = rows[:, [0, 5]]
    assert ((rate >= 0) & (rate <= 1)).all()


def test_patterns_family_needs_no_other_users(dataset, tmp_path):
    solo = tmp_path / "solo"
    for k in range(3):
        (solo / "alice").mkdir(parents=True, exist_ok=True)
        (solo / "alice" / f"s{k}.csv").write_bytes((dataset / "alice" / f"s{k}.csv").read_bytes())
    out = fit(solo, tmp_path / "m", "patterns")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training"]["genuine_sessions"] == ["alice/s0.csv", "alice/s1.csv", "alice/s2.csv"]
    assert "heldout_window_vs_other_users" not in manifest["metrics"]
