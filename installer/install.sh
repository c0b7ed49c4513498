#!/usr/bin/env bash
# Install mouseguard for the current user on Linux or macOS.
#
# An isolated venv (default ~/.local/share/mouseguard/venv), never the system Python: the agent
# pins onnxruntime/pynput versions that must not fight with the distribution's packages, and
# uninstalling is then one folder. PyTorch's CPU wheel goes in first because the default PyPI
# wheel on Linux pulls gigabytes of CUDA libraries that enrolment never uses.
#
# Usage: installer/install.sh [options]
#   --from PATH|URL   install from this source folder, wheel/sdist, or URL (git+https://..., https://...)
#                     (default: the source folder this script lives in)
#   --pipx            install with pipx instead of a plain venv (if pipx is on PATH)
#   --no-train        runtime only: no torch/onnx/scikit-learn (enrolment then needs a model made elsewhere)
#   --no-autostart    do not start mouseguard at login
#   --tray-menu       let the venv see the system's PyGObject, so the tray icon gets its menu
#                     (AppIndicator; Debian/Ubuntu: sudo apt install python3-gi gir1.2-ayatanaappindicator3-0.1)
#   --python PY       interpreter to build the venv with (default: $MOUSEGUARD_PYTHON or python3; >= 3.10)
#   --dry-run         print what would be run, change nothing
#   -h, --help        this text
#
# Environment:
#   MOUSEGUARD_VENV         venv location (default ~/.local/share/mouseguard/venv)
#   MOUSEGUARD_BIN_DIR      where the `mouseguard` link goes (default ~/.local/bin)
#   MOUSEGUARD_TORCH_SPEC   the torch requirement, pip words split on spaces (default "torch")
#   MOUSEGUARD_TORCH_INDEX  index added to pip's configured ones for the CPU-only wheel (default
#                           https://download.pytorch.org/whl/cpu; "" for none); the same two
#                           variables as installer/dev-env (installer/torch-source.sh)
set -euo pipefail

say() { printf '==> %s\n' "$*"; }
warn() { printf 'mouseguard install: warning: %s\n' "$*" >&2; }
die() { printf 'mouseguard install: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }

run() {
    printf '+ %s\n' "$*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

script_dir=$(cd "$(dirname "$0")" && pwd)
[ -f "$script_dir/torch-source.sh" ] || {
    printf 'mouseguard install: run install.sh from mouseguard source folder (installer/torch-source.sh is missing)\n' >&2
    exit 1
}
# shellcheck source=installer/torch-source.sh
. "$script_dir/torch-source.sh"
source_spec=""
use_pipx=0
train=1
autostart=1
tray_menu=0
DRY_RUN=0
python=${MOUSEGUARD_PYTHON:-python3}

while [ $# -gt 0 ]; do
    case "$1" in
        --from) [ $# -ge 2 ] || die "--from needs a path or URL"; source_spec=$2; shift ;;
        --from=*) source_spec=${1#--from=} ;;
        --pipx) use_pipx=1 ;;
        --no-train) train=0 ;;
        --no-autostart) autostart=0 ;;
        --tray-menu) tray_menu=1 ;;
        --python) [ $# -ge 2 ] || die "--python needs an interpreter"; python=$2; shift ;;
        --python=*) python=${1#--python=} ;;
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

# --------------------------------------------------------------------------- what to install
extras=""
[ "$train" -eq 1 ] && extras="[train]"

if [ -z "$source_spec" ]; then
    source_spec=$(dirname "$script_dir")
    [ -f "$source_spec/pyproject.toml" ] || die "no source folder next to this script ($source_spec); give one with --from"
fi
if [ -e "$source_spec" ]; then
    # A folder, wheel or sdist: pip takes "PATH[extra]" for all three.
    source_abs=$(cd "$(dirname "$source_spec")" && pwd)/$(basename "$source_spec")
    requirement="$source_abs$extras"
    runtime_requirement="$source_abs"
else
    case "$source_spec" in
        *://*) requirement="mouseguard$extras @ $source_spec"; runtime_requirement="mouseguard @ $source_spec" ;;
        *) die "--from $source_spec: no such file or folder, and not a URL" ;;
    esac
fi

# ------------------------------------------------------------------------------- preflight
command -v "$python" >/dev/null 2>&1 || die "$python not found; install Python 3.10 or newer, or pass --python"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$python is Python $("$python" -c 'import platform; print(platform.python_version())'); mouseguard needs 3.10 or newer"

if [ "$(uname -s)" = Linux ]; then
    # pynput pulls evdev on Linux, which compiles a C extension when no wheel fits.
    if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
        warn "no C compiler found; if installing evdev fails, install gcc and the Python headers (Debian/Ubuntu: sudo apt install gcc python3-dev)"
    fi
    if [ "${XDG_SESSION_TYPE:-}" = wayland ]; then
        warn "this is a Wayland session: it gives programs no global mouse hook, so mouseguard can only protect X11 (Xorg) sessions"
    fi
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
torch_args=()
if [ "$train" -eq 1 ]; then
    torch_pip_args "$python" torch  # the CPU index added to the configured one, if it answers
fi

if [ "$use_pipx" -eq 1 ] && ! command -v pipx >/dev/null 2>&1; then
    warn "--pipx given but pipx is not on PATH; using a plain venv instead"
    use_pipx=0
fi

# --------------------------------------------------------------------------------- install
if [ "$use_pipx" -eq 1 ]; then
    say "Installing with pipx"
    # Runtime first (it has no torch), then the CPU torch, then the [train] extra: installing
    # "[train]" directly would let pip fetch the CUDA torch from PyPI.
    run pipx install --force --python "$python" "$runtime_requirement"
    if [ "$train" -eq 1 ]; then
        run pipx runpip mouseguard install "${torch_args[@]}"
        run pipx runpip mouseguard install "$requirement"
    fi
    bin_dir=$(pipx environment --value PIPX_BIN_DIR 2>/dev/null || echo "$HOME/.local/bin")
    mouseguard="$bin_dir/mouseguard"
    agent_python=""
else
    venv=${MOUSEGUARD_VENV:-$HOME/.local/share/mouseguard/venv}
    if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv" 2>/dev/null)" ]; then
        die "$venv exists and is not a venv; set MOUSEGUARD_VENV to another folder"
    fi
    if [ ! -e "$(dirname "$venv")" ]; then
        # The venv's parent is mouseguard's data folder by default, beside the user's models.
        run mkdir -p "$(dirname "$venv")"
        run chmod 700 "$(dirname "$venv")"
    fi
    venv_args=()
    if [ "$tray_menu" -eq 1 ]; then
        # pystray's AppIndicator backend needs PyGObject and the typelib, which come from the
        # distribution (PyGObject from pip compiles against GObject's headers): the venv sees them.
        if "$python" -c 'import gi, sys
for name in ("AyatanaAppIndicator3", "AppIndicator3"):
    try:
        gi.require_version(name, "0.1"); sys.exit(0)
    except ValueError:
        pass
sys.exit(1)' 2>/dev/null; then
            venv_args=(--system-site-packages)
        else
            warn "--tray-menu: $python has no PyGObject with an AppIndicator typelib (Debian/Ubuntu: sudo apt install python3-gi gir1.2-ayatanaappindicator3-0.1); going on without: the tray icon will have no menu, use mouseguard pause|resume|stop"
        fi
    fi
    say "Creating the venv $venv"
    run "$python" -m venv ${venv_args[@]+"${venv_args[@]}"} "$venv" || die "could not create a venv with $python (Debian/Ubuntu: sudo apt install python3-venv)"
    agent_python="$venv/bin/python"
    run "$agent_python" -m pip install --quiet --upgrade pip
    if [ "$train" -eq 1 ]; then
        say "Installing PyTorch (${torch_args[*]})"
        run "$agent_python" -m pip install "${torch_args[@]}"
    fi
    say "Installing mouseguard from $source_spec"
    run "$agent_python" -m pip install --upgrade "$requirement"

    bin_dir=${MOUSEGUARD_BIN_DIR:-$HOME/.local/bin}
    mouseguard="$bin_dir/mouseguard"
    if [ -e "$mouseguard" ] && [ ! -L "$mouseguard" ]; then
        die "$mouseguard exists and is not a link this installer made; remove it or set MOUSEGUARD_BIN_DIR"
    fi
    run mkdir -p "$bin_dir"
    run ln -sfn "$venv/bin/mouseguard" "$mouseguard"
fi

if [ "$DRY_RUN" -eq 0 ] && [ -n "$agent_python" ]; then
    "$agent_python" -c 'import agent' || die "the installed package does not import; see the messages above"
fi

# ------------------------------------------------------------------------------- autostart
status=0
if [ "$autostart" -eq 1 ]; then
    say "Starting mouseguard at login"
    if ! run "$mouseguard" autostart enable; then
        warn "enabling autostart failed: mouseguard will not start at login until \`mouseguard autostart enable\` succeeds"
        status=1
    fi
fi

# ---------------------------------------------------------------------------------- next
echo
say "mouseguard is installed: $mouseguard"
case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *) echo "    $bin_dir is not on your PATH; add it (e.g. in ~/.profile): export PATH=\"$bin_dir:\$PATH\"" ;;
esac
if [ "$(uname -s)" = Darwin ]; then
    echo "    macOS will ask to allow Input Monitoring/Accessibility for Python the first time it runs."
fi
if [ "$train" -eq 1 ]; then
    echo "    Next: run  mouseguard enroll  to teach it how you move the mouse."
else
    echo "    Runtime only (--no-train): enrolling needs the training extra. Re-run without --no-train"
    echo "    to enrol here, or put a model made elsewhere into mouseguard's models folder."
fi
exit "$status"
