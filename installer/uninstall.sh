#!/usr/bin/env bash
# Uninstall mouseguard for the current user on Linux or macOS.
#
# Stops a running agent, turns autostart off, removes the venv (or the pipx install) and the
# `mouseguard` link. The user's models, recordings, configuration and logs stay where they
# are unless --purge is given: a model is the product of half an hour of enrolment, and a
# reinstall should find it again.
#
# Usage: installer/uninstall.sh [--purge] [--yes] [--dry-run]
#   --purge     also delete models, recordings, configuration, logs and state
#   --yes       do not ask before --purge deletes anything
#   --dry-run   print what would be removed, change nothing
#
# Environment: MOUSEGUARD_VENV, MOUSEGUARD_BIN_DIR as for install.sh; MOUSEGUARD_HOME as for the agent.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }
warn() { printf 'mouseguard uninstall: warning: %s\n' "$*" >&2; }
die() { printf 'mouseguard uninstall: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }

run() {
    printf '+ %s\n' "$*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

purge=0
assume_yes=0
DRY_RUN=0
while [ $# -gt 0 ]; do
    case "$1" in
        --purge) purge=1 ;;
        --yes | -y) assume_yes=1 ;;
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

venv=${MOUSEGUARD_VENV:-$HOME/.local/share/mouseguard/venv}
bin_dir=${MOUSEGUARD_BIN_DIR:-$HOME/.local/bin}
link="$bin_dir/mouseguard"

via_pipx=0
agent_python=""
mouseguard=""
if [ -x "$venv/bin/python" ]; then
    agent_python="$venv/bin/python"
    mouseguard="$venv/bin/mouseguard"
elif command -v pipx >/dev/null 2>&1 && pipx list --short 2>/dev/null | grep -q '^mouseguard '; then
    via_pipx=1
    pipx_venv=$(pipx environment --value PIPX_LOCAL_VENVS 2>/dev/null || echo "$HOME/.local/share/pipx/venvs")
    agent_python="$pipx_venv/mouseguard/bin/python"
    mouseguard=$(command -v mouseguard || true)
fi

# --------------------------------------------------- where the user's files are (ask the agent)
# The agent's own paths module is the one source of truth; asked before its venv disappears.
# (Plain variables, no associative arrays: macOS still ships bash 3.2.)
dir_config="" dir_data="" dir_logs="" dir_state="" dir_models="" dir_recordings=""
if [ -n "$agent_python" ] && [ -x "$agent_python" ]; then
    locations=$("$agent_python" -c 'from agent import paths
d = paths.all_dirs()
print("\n".join(str(d[k]) for k in ("config", "data", "logs", "state", "models", "recordings")))' 2>/dev/null) || locations=""
    if [ -n "$locations" ]; then
        {
            read -r dir_config; read -r dir_data; read -r dir_logs
            read -r dir_state; read -r dir_models; read -r dir_recordings
        } <<<"$locations"
    fi
fi
if [ -z "$dir_config" ]; then
    # No working install left to ask: the same defaults the agent would use.
    if [ -n "${MOUSEGUARD_HOME:-}" ]; then
        dir_config="$MOUSEGUARD_HOME/config" dir_data="$MOUSEGUARD_HOME/data"
        dir_logs="$MOUSEGUARD_HOME/logs" dir_state="$MOUSEGUARD_HOME/state"
    elif [ "$(uname -s)" = Darwin ]; then
        dir_config="$HOME/Library/Application Support/mouseguard" dir_data=$dir_config dir_state=$dir_config
        dir_logs="$HOME/Library/Logs/mouseguard"
    else
        dir_config="${XDG_CONFIG_HOME:-$HOME/.config}/mouseguard"
        dir_data="${XDG_DATA_HOME:-$HOME/.local/share}/mouseguard"
        dir_state="${XDG_STATE_HOME:-$HOME/.local/state}/mouseguard"
        dir_logs="$dir_state/log"
    fi
    dir_models="$dir_data/models" dir_recordings="$dir_data/recordings"
fi

# ---------------------------------------------------------------------- stop a running agent
if [ -n "$agent_python" ] && [ -x "$agent_python" ]; then
    pid=$("$agent_python" -c 'from agent import instance, paths
print(instance.running_pid(paths.lock_file()) or "")' 2>/dev/null || true)
    if [ "$(uname -s)" = Darwin ]; then
        run launchctl bootout "gui/$(id -u)/io.github.mouseguard.agent" 2>/dev/null || true
    fi
    if [ -n "$pid" ]; then
        say "Stopping the running agent (pid $pid)"
        run kill "$pid" || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
    fi
fi

# ------------------------------------------------------------------------------- autostart
say "Turning autostart off"
if [ -n "$mouseguard" ] && [ -x "$mouseguard" ] && run "$mouseguard" autostart disable; then
    :
elif [ -n "$agent_python" ] && [ -x "$agent_python" ] &&
    run "$agent_python" -c 'from agent import autostart; autostart.disable()'; then
    :
else
    # Nothing left to ask: remove the entries where the autostart module puts them.
    run rm -f "${XDG_CONFIG_HOME:-$HOME/.config}/autostart/mouseguard.desktop" \
        "$HOME/Library/LaunchAgents/io.github.mouseguard.agent.plist"
fi

# ------------------------------------------------------------------------ program and link
if [ "$via_pipx" -eq 1 ]; then
    say "Removing the pipx install"
    run pipx uninstall mouseguard
elif [ -e "$venv" ]; then
    [ -f "$venv/pyvenv.cfg" ] || die "$venv is not a venv; not removing it"
    say "Removing $venv"
    run rm -rf "$venv"
else
    say "No venv at $venv"
fi
if [ -L "$link" ]; then
    case "$(readlink "$link")" in
        "$venv"/*) run rm -f "$link" ;;
        *) warn "$link points elsewhere ($(readlink "$link")); left alone" ;;
    esac
fi

# -------------------------------------------------------------------------- the user's files
safe_to_delete() {
    # Refuse anything that is not plainly mouseguard's own folder.
    case "$1" in
        "" | / | "$HOME" | "$HOME/") return 1 ;;
        *mouseguard*) return 0 ;;
        "${MOUSEGUARD_HOME:-/nonexistent}"/*) return 0 ;;
        *) return 1 ;;
    esac
}

if [ "$purge" -eq 1 ]; then
    targets=()
    for folder in "$dir_config" "$dir_data" "$dir_logs" "$dir_state"; do
        [ -e "$folder" ] || continue
        case " ${targets[*]-} " in *" $folder "*) continue ;; esac # one folder for several roles (macOS)
        if safe_to_delete "$folder"; then targets+=("$folder"); else warn "not deleting $folder: not a mouseguard folder"; fi
    done
    if [ ${#targets[@]} -eq 0 ]; then
        say "No models, recordings, configuration or logs to delete"
    else
        if [ "$assume_yes" -eq 0 ] && [ -t 0 ]; then
            printf 'Delete these, including every enrolled model and recording?\n'
            printf '    %s\n' "${targets[@]}"
            printf '[y/N] '
            read -r answer
            case "$answer" in y | Y | yes | YES) ;; *) die "nothing deleted" ;; esac
        fi
        say "Deleting models, recordings, configuration and logs"
        run rm -rf "${targets[@]}"
    fi
else
    echo
    say "mouseguard is uninstalled. Your files are kept:"
    printf '    %-11s %s\n' models "$dir_models" recordings "$dir_recordings" config "$dir_config" logs "$dir_logs"
    echo "    Delete them with: $0 --purge"
fi
