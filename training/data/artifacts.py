"""``mouseguard train build-artifacts``: rebuild everything in ``models/`` from public data.

* ``encoder/`` — the 1D-CNN encoder pre-trained as an identifier of SapiMouse's 120 users
  (SapiMouse stands in for the seed paper's DFL set, which is not available);
* ``background/pool.npz`` — impostor blocks of the same SapiMouse users and of Balabit's 10
  users, float16, used as negatives when a person enrols alone, with fingerprints of every
  recording of theirs. Two capture set-ups (browser events; a remote-desktop client) keep the
  network from learning "this machine vs the pool's machine": with SapiMouse alone, a model
  enrolled on two Balabit sessions ranked other Balabit users' sessions above the owner's
  (mean per-user session AUC 0.71 over the 10 users; 0.88 with Balabit users in the pool — users the
  test never met; ``mouseguard train evaluate --protocol enrolment``);
* ``demo/`` — a model enrolled, exactly as ``mouseguard enroll`` does it, on Balabit sessions
  of one user, and two excerpts for ``mouseguard demo``: a held-out session of that user
  (genuine) and a session of another Balabit user (impostor).

Seeded: the same data and seed give the same artefacts (up to torch's CPU kernels).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from agent.blocks import BlockSpec
from agent.files import atomic_write_text, private_dir
from agent.model_dir import sha256_file
from agent.recordings import read_recording, write_recording
from training.data.datasets import balabit_sessions, blocks_by_user, sapimouse_sessions, session_blocks, session_events
from training.enrol import enrol
from training.families.cnn.train import FitConfig
from training.families.cnn.encoder import pretrain, save_encoder
from training.data.pool import fingerprints, save_pool

DEMO_USER = "user7"
DEMO_IMPOSTOR = "user9"
#: Blocks per pool user: ~75 keeps 120 users' pool within a few MB of float16.
POOL_BLOCKS_PER_USER = 75
#: Balabit has 10 users with hours each: more blocks per user, so both set-ups weigh in.
POOL_BLOCKS_PER_BALABIT_USER = 150
DEMO_MINUTES = 6.0

SOURCES = {
    "sapimouse": "SapiMouse — Antal, Fejér, Buza (2021), SACI 2021; "
                 "https://www.ms.sapientia.ro/~manyi/sapimouse/sapimouse.html (free for research use, cite the paper)",
    "balabit": "Balabit Mouse Dynamics Challenge — Fülöp, Kovács, Kurics, Windhager-Pokol (2016); "
               "https://github.com/balabit/Mouse-Dynamics-Challenge (cite the data set)",
}


def _excerpt(events: np.ndarray, minutes: float) -> np.ndarray:
    """The first ``minutes`` of active movement (idle gaps do not count)."""
    dt = np.diff(events["t"], prepend=events["t"][0])
    active = np.cumsum(np.where((dt > 0) & (dt <= 2.0), dt, 0.0))
    return events[active <= minutes * 60]


def build_pool(path, sessions_by_dataset: dict, spec: BlockSpec, seed: int, blocks_per_user: dict) -> dict:
    """Sample each user's blocks into the pool (users named ``dataset/user``), fingerprint all
    their recordings, save; returns the blocks by pool user."""
    rng = np.random.default_rng(seed)
    pool, fps = {}, {}
    for dataset, sessions in sessions_by_dataset.items():
        for user in dict.fromkeys(s.user for s in sessions):
            mine = [s for s in sessions if s.user == user]
            b = np.concatenate([session_blocks(s, spec) for s in mine])
            name = f"{dataset}/{user}"
            pool[name] = b[np.sort(rng.choice(len(b), min(len(b), blocks_per_user[dataset]), replace=False))]
            fps[name] = np.unique(np.concatenate([fingerprints(session_events(s)) for s in mine]))
    private_dir(Path(path).parent)
    save_pool(path, pool, spec, {"datasets": list(sessions_by_dataset), "blocks_per_user": blocks_per_user,
                                 "seed": seed}, fps)
    return pool


def build(data_dir, out_dir, spec: BlockSpec, cfg: FitConfig, log) -> dict:
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    sapi = sapimouse_sessions(data_dir / "sapimouse")
    bala = balabit_sessions(data_dir / "balabit-training")

    by_user = blocks_by_user(sapi, spec)
    log(f"encoder: pre-training on SapiMouse, {len(by_user)} users, {sum(map(len, by_user.values()))} blocks")
    model, users = pretrain(by_user, spec, cfg, log=log)
    save_encoder(model, spec, out_dir / "encoder", {"dataset": "sapimouse", "users": users,
                                                    "epochs": cfg.epochs, "seed": cfg.seed})

    pool_path = out_dir / "background" / "pool.npz"
    pool = build_pool(pool_path, {"sapimouse": sapi, "balabit": bala}, spec, cfg.seed,
                      {"sapimouse": POOL_BLOCKS_PER_USER, "balabit": POOL_BLOCKS_PER_BALABIT_USER})
    log(f"background pool: {sum(map(len, pool.values()))} blocks of {len(pool)} users, "
        f"{pool_path.stat().st_size / 1e6:.1f} MB")

    demo_sessions = [s for s in bala if s.user == DEMO_USER]
    held_out, enrol_sessions = demo_sessions[-1], demo_sessions[:-1]
    impostor = next(s for s in bala if s.user == DEMO_IMPOSTOR)
    demo_dir = private_dir(out_dir / "demo")
    summary = enrol([read_recording(s.path) for s in enrol_sessions], DEMO_USER, demo_dir / "model",
                    encoder_dir=out_dir / "encoder", pool_path=pool_path, cfg=cfg,
                    exclude_pool_users=[f"balabit/{DEMO_IMPOSTOR}"],
                    sources=[f"balabit:{s.key}" for s in enrol_sessions], log=log)
    write_recording(demo_dir / "genuine.csv.gz", _excerpt(read_recording(held_out.path), DEMO_MINUTES))
    write_recording(demo_dir / "impostor.csv.gz", _excerpt(read_recording(impostor.path), DEMO_MINUTES))

    files = sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name not in ("manifest.json", "README.md")
                   and "__pycache__" not in p.parts and p.suffix != ".py")
    manifest = {
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": f"mouseguard train build-artifacts --data {data_dir} --seed {cfg.seed} --epochs {cfg.epochs}",
        "block_spec": spec.to_dict(),
        "sources": SOURCES,
        "encoder": {"dataset": "sapimouse", "users": len(users)},
        "background_pool": {"datasets": ["sapimouse", "balabit"], "users": len(pool),
                            "blocks": int(sum(map(len, pool.values())))},
        "demo": {"user": DEMO_USER, "enrolled_on": [f"balabit:{s.key}" for s in enrol_sessions],
                 "genuine_excerpt": f"balabit:{held_out.key}, first {DEMO_MINUTES:g} min of movement",
                 "impostor_excerpt": f"balabit:{impostor.key}, first {DEMO_MINUTES:g} min of movement",
                 "heldout_block_auc": summary["metrics"]["heldout_block"]["auc"]},
        "files": {str(p.relative_to(out_dir)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files},
    }
    atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
