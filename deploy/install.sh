#!/usr/bin/env bash
# Install signstream's runtime as system services (Raspberry Pi OS 12 / Debian 12, Python >= 3.11).
#
#   sudo deploy/install.sh                  # from a checkout: venv, config, model, user, units, start
#   sudo deploy/install.sh --model-dir DIR  # the same, with another model (an update: see DEPLOY.md)
#
# What goes where (docs/DEPLOY.md):
#   /opt/signstream/venv             the runtime (pip install of the package; never TensorFlow)
#   /opt/signstream/models/student   -> models/<card sha256[:12]>/ (model_card.json + .tflite files)
#   /etc/signstream/signstream.toml  the config (written once; never overwritten)
#   /var/cache/signstream/numba      numba's compiled-kernel cache (NUMBA_CACHE_DIR)
#   /var/cache/signstream/designs    designed filter coefficients (SIGNSTREAM_CACHE_DIR=/var/cache/signstream)
#   /var/lib/signstream              the service user's home, recordings
#   /etc/systemd/system/signstream*  the units (signstream.target starts all three daemons)
#
# Idempotent: a second run with the same inputs changes no file. --root DIR stages everything under
# DIR instead of / (tests, image builds): then no user is created, nothing is chown'ed and systemctl
# is not called; the venv's scripts name DIR in their #! line, so it only runs from there.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: install.sh [options]
  --root DIR          install under DIR instead of / (no user, no chown, no systemctl)
  --prefix DIR        software location (default /opt/signstream)
  --package SPEC      a source directory or a built wheel (default: this checkout)
  --model-dir DIR     model to install: model_card.json + its files (default: models/student of
                      the --package source directory, or of this checkout)
  --python PYTHON     interpreter for the venv (default python3; must be >= 3.11)
  --pip-option OPT    passed to every pip install (repeatable), e.g. --pip-option=--no-index
  --no-systemd        do not install or touch systemd units (run the daemons by hand)
  --no-start          install and enable the units, but do not start or restart anything
  --with-speak        also install and enable signstream-speak.service (signs said aloud; needs
                      apt-get install espeak-ng alsa-utils: docs/SPEECH.md)
  --single-process    signstream-pipeline.service (acquire, infer and sink in one process, for a Pi
                      with little memory) instead of the three daemons' units; without it, an
                      earlier --single-process install is switched back to the three
  -h, --help          this text
EOF
}

die() { echo "install: $*" >&2; exit 1; }
say() { echo "install: $*"; }

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHECKOUT="$(cd "$SCRIPT_DIR/.." && pwd)"
ROOT=/
PREFIX=/opt/signstream
PACKAGE="$CHECKOUT"
MODEL_DIR=""
PYTHON=python3
PIP_OPTIONS=()
SYSTEMD=1
START=1
SPEAK=0
SINGLE=0

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
        --root=*) ROOT="${1#*=}"; shift ;;
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) PREFIX="${1#*=}"; shift ;;
        --package) PACKAGE="${2:?--package needs a path}"; shift 2 ;;
        --package=*) PACKAGE="${1#*=}"; shift ;;
        --model-dir) MODEL_DIR="${2:?--model-dir needs a directory}"; shift 2 ;;
        --model-dir=*) MODEL_DIR="${1#*=}"; shift ;;
        --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
        --python=*) PYTHON="${1#*=}"; shift ;;
        --pip-option) PIP_OPTIONS+=("${2:?--pip-option needs a value}"); shift 2 ;;
        --pip-option=*) PIP_OPTIONS+=("${1#*=}"); shift ;;
        --no-systemd) SYSTEMD=0; shift ;;
        --no-start) START=0; shift ;;
        --with-speak) SPEAK=1; shift ;;
        --single-process) SINGLE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
done

case "$PREFIX" in /*) ;; *) die "--prefix must be absolute, got '$PREFIX'" ;; esac
if [ -z "$MODEL_DIR" ]; then                # the model that comes with the source being installed
    if [ -d "$PACKAGE" ]; then MODEL_DIR="$PACKAGE/models/student"; else MODEL_DIR="$CHECKOUT/models/student"; fi
fi
mkdir -p "$ROOT"
ROOT="$(cd "$ROOT" && pwd)"
if [ "$ROOT" = / ]; then ROOT=""; fi      # paths below are "$ROOT/etc/...": no double slash
LIVE=0                                    # 1: installing into the running system
if [ -z "$ROOT" ]; then LIVE=1; fi
if [ "$LIVE" = 1 ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo), or stage into a directory with --root DIR"
fi

CONFIG_DIR=/etc/signstream
STATE_DIR=/var/lib/signstream
CACHE_DIR=/var/cache/signstream
UNIT_DIR=/etc/systemd/system
SERVICES=(signstream-acquire.service signstream-infer.service signstream-sink.service)
OTHER_MODE=(signstream-pipeline.service)    # the units of the mode not chosen: removed if present
if [ "$SINGLE" = 1 ]; then
    OTHER_MODE=("${SERVICES[@]}")
    SERVICES=(signstream-pipeline.service)
fi
if [ "$SPEAK" = 1 ]; then                # optional: only when asked
    SERVICES+=(signstream-speak.service)
    if [ "$LIVE" = 1 ] && ! command -v espeak-ng >/dev/null; then
        say "warning: espeak-ng is not installed; stream-speak will not start until: apt-get install espeak-ng alsa-utils"
    fi
fi
VENV="$ROOT$PREFIX/venv"
CHANGED=()                                # what this run changed; empty on a repeated run

# install -C copies only when content, owner or mode differ: unchanged files keep their mtime.
install_file() {  # mode source destination
    if ! cmp -s "$2" "$3" 2>/dev/null || [ "$(stat -c %a "$3")" != "${1#0}" ]; then
        install -D -m "$1" "$2" "$3"
        CHANGED+=("$3")
    fi
}
install_dir() {  # mode directory [owner:group on a live install]
    if [ ! -d "$2" ] || [ "$(stat -c %a "$2")" != "${1#0}" ]; then
        install -d -m "$1" "$2"
        CHANGED+=("$2")
    fi
    if [ "$LIVE" = 1 ] && [ -n "${3:-}" ] && [ "$(stat -c %U:%G "$2")" != "$3" ]; then
        chown "$3" "$2"
        CHANGED+=("$2 (owner)")
    fi
}

# --- 1. The service user (live installs only) ---------------------------------------------------
if [ "$LIVE" = 1 ] && ! getent passwd signstream >/dev/null; then
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "signstream daemons" signstream
    CHANGED+=("user signstream")
fi

# --- 2. The venv and the package ------------------------------------------------------------------
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is Python $("$PYTHON" -c 'import sys; print(sys.version.split()[0])'); signstream needs >= 3.11"
if [ ! -x "$VENV/bin/python" ]; then
    # The venv's own python, not a copy of a venv we were started from (its base interpreter).
    "$PYTHON" -m venv "$VENV"
    CHANGED+=("$VENV")
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q)
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

case "$PACKAGE" in
    *.whl) [ -f "$PACKAGE" ] || die "no wheel at $PACKAGE"; WHEEL="$PACKAGE" ;;
    *)  [ -f "$PACKAGE/pyproject.toml" ] || die "$PACKAGE is neither a wheel nor a source directory"
        # Build a wheel first: the venv gets a plain (non-editable) copy, and its RECORD tells
        # whether anything changed since the last install. Built from a copy, so that sudo leaves
        # no root-owned build/ in the user's checkout, and a workstation's .venv is not copied.
        mkdir "$WORK/source"
        tar -C "$PACKAGE" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
            --exclude='*.egg-info' --exclude=__pycache__ --exclude=./runs --exclude=./data \
            --exclude=./tmp -cf - . | tar -C "$WORK/source" -xf -
        "${PIP[@]}" wheel --no-deps ${PIP_OPTIONS[@]+"${PIP_OPTIONS[@]}"} -w "$WORK" "$WORK/source" >/dev/null
        WHEEL="$(ls "$WORK"/signstream-*.whl)" ;;
esac
HELPERS=("$VENV/bin/python" "$SCRIPT_DIR/install_helpers.py")
FINGERPRINT="$("${HELPERS[@]}" wheel-fingerprint "$WHEEL")"
STAMP="$ROOT$PREFIX/.installed-package"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$FINGERPRINT" ] \
        || ! "$VENV/bin/python" -m pip show -q signstream >/dev/null 2>&1; then
    "${PIP[@]}" install ${PIP_OPTIONS[@]+"${PIP_OPTIONS[@]}"} "$WHEEL"        # with dependencies
    "${PIP[@]}" install --force-reinstall --no-deps ${PIP_OPTIONS[@]+"${PIP_OPTIONS[@]}"} "$WHEEL"
    echo "$FINGERPRINT" > "$STAMP"
    CHANGED+=("package signstream ($FINGERPRINT)")
fi
if "$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("tensorflow") is None)'; then
    die "TensorFlow is installed in $VENV: the runtime must not depend on it (pip uninstall tensorflow)"
fi
for service in "${SERVICES[@]}"; do
    script="${service#signstream-}"; script="stream-${script%.service}"
    [ -x "$VENV/bin/$script" ] || die "the package installed no console script $script"
done

# --- 3. The model ---------------------------------------------------------------------------------
# Each model lives in models/<card sha256[:12]>; models/student is a symlink switched atomically,
# so an update never leaves a half-copied model where the daemon looks.
CARD_SHA="$("${HELPERS[@]}" verify-model "$MODEL_DIR/model_card.json")"
MODEL_HOME="$ROOT$PREFIX/models"
MODEL_TARGET="${CARD_SHA:0:12}"
install_dir 0755 "$MODEL_HOME"
if [ ! -d "$MODEL_HOME/$MODEL_TARGET" ] || ! diff -rq "$MODEL_DIR" "$MODEL_HOME/$MODEL_TARGET" >/dev/null; then
    rm -rf "$MODEL_HOME/.incoming"
    cp -r "$MODEL_DIR" "$MODEL_HOME/.incoming"
    chmod -R u=rwX,go=rX "$MODEL_HOME/.incoming"
    "${HELPERS[@]}" verify-model "$MODEL_HOME/.incoming/model_card.json" >/dev/null
    rm -rf "$MODEL_HOME/$MODEL_TARGET"
    mv "$MODEL_HOME/.incoming" "$MODEL_HOME/$MODEL_TARGET"
    CHANGED+=("model $MODEL_TARGET")
fi
if [ "$(readlink "$MODEL_HOME/student" 2>/dev/null)" != "$MODEL_TARGET" ]; then
    ln -sfn "$MODEL_TARGET" "$MODEL_HOME/.student.new"
    mv -T "$MODEL_HOME/.student.new" "$MODEL_HOME/student"
    CHANGED+=("model link student -> $MODEL_TARGET")
fi
shopt -s nullglob
for old in "$MODEL_HOME"/*/; do             # keep the current model only
    old="$(basename "$old")"
    if [ "$old" != "$MODEL_TARGET" ] && [ ! -L "$MODEL_HOME/$old" ]; then
        rm -rf "${MODEL_HOME:?}/$old"; CHANGED+=("removed old model $old")
    fi
done

# --- 4. Config, state and cache directories -------------------------------------------------------
install_dir 0750 "$ROOT$CONFIG_DIR" root:signstream
DEFAULT_TOML="$("$VENV/bin/python" -c 'import stream.config as c; print(c.DEFAULT_CONFIG_PATH)')"
"${HELPERS[@]}" write-config "$DEFAULT_TOML" "$PREFIX/models/student/model_card.json" "$STATE_DIR" \
    "$WORK/signstream.toml"
"${HELPERS[@]}" check-config "$WORK/signstream.toml"
install_file 0644 "$WORK/signstream.toml" "$ROOT$CONFIG_DIR/signstream.toml.default"
if [ ! -e "$ROOT$CONFIG_DIR/signstream.toml" ]; then
    install -m 0640 "$WORK/signstream.toml" "$ROOT$CONFIG_DIR/signstream.toml"
    if [ "$LIVE" = 1 ]; then chown root:signstream "$ROOT$CONFIG_DIR/signstream.toml"; fi
    CHANGED+=("$ROOT$CONFIG_DIR/signstream.toml")
elif ! cmp -s "$WORK/signstream.toml" "$ROOT$CONFIG_DIR/signstream.toml"; then
    say "kept your $CONFIG_DIR/signstream.toml; compare it with signstream.toml.default"
fi
install_dir 0750 "$ROOT$STATE_DIR" signstream:signstream
install_dir 0750 "$ROOT$STATE_DIR/recordings" signstream:signstream
# Owner and mode as the units' CacheDirectory= leaves them, so a run after the services started
# changes nothing.
install_dir 0750 "$ROOT$CACHE_DIR" signstream:signstream
install_dir 0750 "$ROOT$CACHE_DIR/numba" signstream:signstream
install_dir 0750 "$ROOT$CACHE_DIR/designs" signstream:signstream
install_file 0644 "$CHECKOUT/docs/DEPLOY.md" "$ROOT$PREFIX/share/doc/DEPLOY.md"

# --- 5. systemd -----------------------------------------------------------------------------------
if [ "$SYSTEMD" = 1 ]; then
    UNITS_CHANGED=0
    for unit in signstream.target "${SERVICES[@]}"; do
        sed "s#/opt/signstream#$PREFIX#g" "$SCRIPT_DIR/systemd/$unit" > "$WORK/$unit"
        if [ "$unit" = signstream.target ]; then   # the target wants the services of this mode
            sed -i "s#^Wants=.*#Wants=$(printf '%s ' "${SERVICES[@]}" | sed 's/ $//')#" "$WORK/$unit"
        elif [ "$SINGLE" = 1 ]; then                # stream-speak follows the one process, not stream-sink
            sed -i '/^\(After\|Wants\)=/s#signstream-sink\.service#signstream-pipeline.service#' "$WORK/$unit"
        fi
        before=${#CHANGED[@]}
        install_file 0644 "$WORK/$unit" "$ROOT$UNIT_DIR/$unit"
        if [ ${#CHANGED[@]} != "$before" ]; then UNITS_CHANGED=1; fi
    done
    for unit in "${OTHER_MODE[@]}"; do           # switching mode: the other mode's units go
        if [ -e "$ROOT$UNIT_DIR/$unit" ]; then
            if [ "$LIVE" = 1 ] && [ -d /run/systemd/system ]; then systemctl -q disable --now "$unit" || true
            elif [ "$LIVE" = 1 ]; then systemctl -q disable "$unit" 2>/dev/null || true; fi
            rm -f "$ROOT$UNIT_DIR/$unit"
            CHANGED+=("removed $unit (the other mode)")
            UNITS_CHANGED=1
        fi
    done
    if [ "$LIVE" = 1 ]; then
        RUNNING=0   # systemd is not running in a chroot or a container build: enable only
        if [ -d /run/systemd/system ]; then RUNNING=1; fi
        if [ "$RUNNING" = 1 ] && [ "$UNITS_CHANGED" = 1 ]; then systemctl daemon-reload; fi
        for unit in signstream.target "${SERVICES[@]}"; do
            systemctl -q is-enabled "$unit" 2>/dev/null || { systemctl -q enable "$unit"; CHANGED+=("enabled $unit"); }
        done
        if [ "$RUNNING" = 1 ] && [ "$START" = 1 ]; then
            if [ ${#CHANGED[@]} -gt 0 ]; then
                systemctl try-restart "${SERVICES[@]}"    # running ones pick up the new files
            fi
            systemctl start signstream.target             # no-op when already running
        fi
    fi
fi

if [ ${#CHANGED[@]} -eq 0 ]; then
    say "nothing to change: $PREFIX is up to date"
else
    say "changed ${#CHANGED[@]}:"; printf '  %s\n' "${CHANGED[@]}"
fi
