"""installer/install.sh in a clean place: a fresh venv, a working ``mouseguard``, and the runtime
(without the [train] extra) running the demo without torch."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_install_sh_runtime_only_then_uninstall(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8",
        "MOUSEGUARD_VENV": str(tmp_path / "venv"), "MOUSEGUARD_BIN_DIR": str(tmp_path / "bin"),
        "MOUSEGUARD_PYTHON": sys.executable, "MOUSEGUARD_HOME": str(tmp_path / "mg"),
    }
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_CERT"):
        if key in os.environ:
            env[key] = os.environ[key]
    proc = subprocess.run(["bash", str(ROOT / "installer" / "install.sh"), "--no-train", "--no-autostart",
                           "--from", str(ROOT)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    mouseguard = tmp_path / "bin" / "mouseguard"
    help_ = subprocess.run([str(mouseguard), "--help"], env=env, capture_output=True, text=True)
    assert help_.returncode == 0 and "enroll" in help_.stdout
    demo = subprocess.run([str(mouseguard), "demo", "--out", str(tmp_path / "demo.png")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "impostor: locked" in demo.stdout and (tmp_path / "demo.png").stat().st_size > 1000
    venv_python = tmp_path / "venv" / "bin" / "python"
    torch_missing = subprocess.run([str(venv_python), "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
                                   capture_output=True, text=True)
    assert torch_missing.stdout.strip() == "None"  # the runtime installs and runs without torch
    train = subprocess.run([str(mouseguard), "train", "pretrain", "--data", "x", "--out", "y"], env=env,
                           capture_output=True, text=True)
    assert train.returncode == 2 and "needs PyTorch" in train.stderr
    # enrolment without torch: refused at once in one line — before reading files, and before
    # recording half an hour of movement it could not train on (no X server is needed to say so)
    for args in (["--from", str(ROOT / "models" / "demo" / "genuine.csv.gz")], ["--minutes", "1"]):
        enroll = subprocess.run([str(mouseguard), "enroll", *args], env=env, capture_output=True, text=True,
                                timeout=60)
        assert enroll.returncode == 2 and enroll.stderr.count("\n") == 1, enroll.stderr
        assert "needs PyTorch" in enroll.stderr and "mouseguard record" in enroll.stderr
    assert not (tmp_path / "mg" / "data").exists()  # nothing recorded, no model written
    un = subprocess.run(["bash", str(ROOT / "installer" / "uninstall.sh"), "--yes"], env=env,
                        capture_output=True, text=True, timeout=120)
    assert un.returncode == 0, un.stderr
    assert not (tmp_path / "venv").exists() and not mouseguard.exists()
