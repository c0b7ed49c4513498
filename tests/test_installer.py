"""installer/install.sh in a clean place: a fresh venv, a working ``mouseguard``, and the runtime
(without the [train] extra) running the demo without torch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        # the advice installs into this venv, not wherever a bare `pip` would
        assert f"{tmp_path / 'venv' / 'bin' / 'python'} -m pip install" in enroll.stderr
    assert not (tmp_path / "mg" / "data").exists()  # nothing recorded, no model written
    un = subprocess.run(["bash", str(ROOT / "installer" / "uninstall.sh"), "--yes"], env=env,
                        capture_output=True, text=True, timeout=120)
    assert un.returncode == 0, un.stderr
    assert not (tmp_path / "venv").exists() and not mouseguard.exists()


@pytest.fixture
def torch_index(tmp_path):
    """A reachable package index with a torch/ page, served on localhost."""
    import http.server
    import threading

    (tmp_path / "index" / "torch").mkdir(parents=True)
    (tmp_path / "index" / "torch" / "index.html").write_text("<html></html>")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "index"), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def dry_run(tmp_path, **env):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    full = {"PATH": os.environ["PATH"], "HOME": str(home), "MOUSEGUARD_PYTHON": sys.executable,
            "MOUSEGUARD_VENV": str(tmp_path / "venv"), "MOUSEGUARD_BIN_DIR": str(tmp_path / "bin"), **env}
    return subprocess.run(["bash", str(ROOT / "installer" / "install.sh"), "--dry-run", "--no-autostart"],
                          env=full, capture_output=True, text=True, timeout=120)


def torch_line(proc):
    return next(line for line in proc.stdout.splitlines() if line.startswith("+ ") and " install torch" in line)


def test_the_cpu_index_is_added_to_the_configured_one_not_substituted(tmp_path, torch_index):
    # before: "pip install torch --index-url https://download.pytorch.org/whl/cpu" dropped the
    # configured index, and the install failed wherever PyTorch's own was out of reach
    proc = dry_run(tmp_path, MOUSEGUARD_TORCH_INDEX=torch_index)
    assert proc.returncode == 0, proc.stderr
    assert torch_line(proc).endswith(f"-m pip install torch --extra-index-url {torch_index}")
    assert "--index-url" not in torch_line(proc).replace("--extra-index-url", "")


def test_an_unreachable_cpu_index_is_said_and_left_out(tmp_path):
    proc = dry_run(tmp_path, MOUSEGUARD_TORCH_INDEX="http://127.0.0.1:9/whl/cpu")
    assert proc.returncode == 0, proc.stderr
    assert "the PyTorch index http://127.0.0.1:9/whl/cpu cannot be reached" in proc.stderr
    assert torch_line(proc).endswith("-m pip install torch")
    only_configured = dry_run(tmp_path, MOUSEGUARD_TORCH_INDEX="", MOUSEGUARD_TORCH_SPEC="torch==2.13.0")
    assert torch_line(only_configured).endswith("-m pip install torch==2.13.0") and only_configured.stderr == ""


def test_dev_env_reads_the_same_variables(tmp_path, torch_index):
    script = ('. installer/torch-source.sh; torch_pip_args "$PY" torch==2.13.0; printf "%s\\n" "${torch_args[@]}"')
    run = lambda **env: subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True,  # noqa: E731
                                       env={"PATH": os.environ["PATH"], "PY": sys.executable, **env}).stdout.split()
    assert run(MOUSEGUARD_TORCH_INDEX=torch_index) == ["torch==2.13.0", "--extra-index-url", torch_index]
    assert run(MOUSEGUARD_TORCH_INDEX="", MOUSEGUARD_TORCH_SPEC="torch==2.12.0") == ["torch==2.12.0"]
    dev_env = (ROOT / "installer" / "dev-env").read_text()
    assert ". \"$root/installer/torch-source.sh\"" in dev_env and 'torch_pip_args "$venv/bin/python"' in dev_env


def test_tray_menu_lets_the_venv_see_the_systems_pygobject(tmp_path):
    # PyGObject cannot be installed here: a stand-in `gi` that knows the AppIndicator namespace
    # is what the check asks of the interpreter
    fake = tmp_path / "site"
    (fake / "gi").mkdir(parents=True)
    (fake / "gi" / "__init__.py").write_text(
        "def require_version(name, version):\n"
        "    if name != 'AyatanaAppIndicator3':\n"
        "        raise ValueError(name)\n")
    with_gi = dry_run(tmp_path, MOUSEGUARD_TORCH_INDEX="", PYTHONPATH=str(fake))
    plain = next(line for line in with_gi.stdout.splitlines() if " -m venv " in line)
    assert "--system-site-packages" not in plain  # only when asked
    home = tmp_path / "home"
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "MOUSEGUARD_PYTHON": sys.executable,
           "MOUSEGUARD_VENV": str(tmp_path / "venv"), "MOUSEGUARD_BIN_DIR": str(tmp_path / "bin"),
           "MOUSEGUARD_TORCH_INDEX": ""}
    args = ["bash", str(ROOT / "installer" / "install.sh"), "--dry-run", "--no-autostart", "--tray-menu"]
    asked = subprocess.run(args, env={**env, "PYTHONPATH": str(fake)}, capture_output=True, text=True, timeout=120)
    venv_line = next(line for line in asked.stdout.splitlines() if " -m venv " in line)
    assert venv_line.endswith(f"-m venv --system-site-packages {tmp_path / 'venv'}") and asked.stderr == ""
    missing = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert "--tray-menu:" in missing.stderr and "gir1.2-ayatanaappindicator3-0.1" in missing.stderr
    assert next(line for line in missing.stdout.splitlines() if " -m venv " in line).endswith(
        f"-m venv {tmp_path / 'venv'}")
