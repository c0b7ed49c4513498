# Where PyTorch comes from: one set of variables for installer/install.sh and installer/dev-env.
# Sourced by both (bash).
#
#   MOUSEGUARD_TORCH_SPEC   the torch requirement as pip words, split on spaces
#                           (install.sh: "torch"; dev-env: "torch==2.13.0")
#   MOUSEGUARD_TORCH_INDEX  a package index *added* to pip's configured ones (--extra-index-url),
#                           for the CPU-only wheel; default https://download.pytorch.org/whl/cpu;
#                           "" adds none (only the configured index is used, as on CI)
#
# Added, not substituted: with --index-url the configured index (a company mirror, a local
# wheel house) was dropped and the install failed wherever PyTorch's index is not reachable.
# When it is unreachable, one line says so and torch comes from the configured index alone.

MOUSEGUARD_CPU_INDEX="https://download.pytorch.org/whl/cpu"

# torch_index_reachable PYTHON URL: whether URL's torch/ page answers within 10 s
torch_index_reachable() {
    "$1" - "$2" >/dev/null 2>&1 <<'PY'
import sys
import urllib.request

urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10).close()
PY
}

# torch_pip_args PYTHON DEFAULT_SPEC: set the array torch_args to pip's arguments for torch
torch_pip_args() {
    local python=$1 spec=${MOUSEGUARD_TORCH_SPEC:-$2}
    local index=${MOUSEGUARD_TORCH_INDEX-$MOUSEGUARD_CPU_INDEX}
    read -r -a torch_args <<<"$spec"
    case " $spec " in
        *" --index-url "* | *" --extra-index-url "* | *" -i "*) return 0 ;;  # the spec names its index itself
    esac
    [ -n "$index" ] || return 0
    if torch_index_reachable "$python" "$index"; then
        torch_args+=(--extra-index-url "$index")
    else
        printf 'mouseguard: warning: the PyTorch index %s cannot be reached; torch comes from the configured package index instead (on Linux that may be the multi-GB CUDA build). Set MOUSEGUARD_TORCH_INDEX to a reachable mirror of it, or to "" to use only the configured index.\n' "$index" >&2
    fi
}
