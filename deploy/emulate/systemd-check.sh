#!/usr/bin/env bash
# Run the installed units under a real systemd: a Debian 12 (amd64, native: fast) root booted as a
# container with systemd-nspawn. NOT part of CI (root, debootstrap, a few minutes).
#
#   sudo deploy/emulate/systemd-check.sh
#
# systemd-analyze verify checks the unit files; only running them shows whether the daemons live
# with the hardening (seccomp filter, address families, read-only file system, numba's JIT). This
# checks, with the units exactly as install.sh installs them:
#   1. all three services come up and stay up (no restarts) and predictions reach the sink,
#   2. the journal has no sandbox refusals and no tracebacks,
#   3. a crashed daemon (SIGSEGV) is restarted by systemd,
#   4. a config error (exit status 2) is not restarted,
#   5. stopping signstream.target stops all three.
#
# Environment: ROOTFS (default /work/amd64-root), WHEELS (/work/amd64-wheels), LOG_DIR
# (/work/arm64-logs), MIRROR, HOST_PYTHON, MODEL_DIR (models/student), RUN_S (how long the
# pipeline runs before the checks, default 30), NICE (default 10), MODEL_UPDATE_DIR (another model:
# also check that installing it restarts infer with it).
set -euo pipefail

CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROOTFS="${ROOTFS:-/work/amd64-root}"
WHEELS="${WHEELS:-/work/amd64-wheels}"
LOG_DIR="${LOG_DIR:-/work/arm64-logs}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
HOST_PYTHON="${HOST_PYTHON:-$CHECKOUT/.venv/bin/python}"
MODEL_DIR="${MODEL_DIR:-$CHECKOUT/models/student}"
RUN_S="${RUN_S:-30}"
NICE="${NICE:-10}"
SRC_IN_ROOT=/usr/local/src/signstream
SERVICES=(signstream-acquire signstream-infer signstream-sink)

stage() { echo; echo "== $(date -u +%H:%M:%S) $*"; }
die() { echo "systemd-check: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
case "$ROOTFS" in "$CHECKOUT"/*) die "keep ROOTFS outside the checkout" ;; esac
mkdir -p "$LOG_DIR"
[ -f "$MODEL_DIR/model_card.json" ] || die "no model card in $MODEL_DIR (set MODEL_DIR)"

stage "1. tools and a Debian 12 root in $ROOTFS"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if [ ! -x "$ROOTFS/lib/systemd/systemd" ]; then
    nice -n "$NICE" debootstrap --variant=minbase \
        --include=python3,python3-venv,ca-certificates,systemd,systemd-sysv,dbus,procps \
        bookworm "$ROOTFS" "$MIRROR" > "$LOG_DIR/debootstrap-amd64.log" 2>&1 \
        || die "debootstrap (log: $LOG_DIR/debootstrap-amd64.log)"
fi
# --private-network: the daemons bind 127.0.0.1:5555-5557 in the container's own loopback, not the
# host's. No registration with machined (the host may not run systemd).
NSPAWN=(nice -n "$NICE" systemd-nspawn -q --keep-unit --register=no --private-network -D "$ROOTFS")

stage "2. wheels, source and model into the root; deploy/install.sh (not booted yet)"
mapfile -t REQUIREMENTS < <("$HOST_PYTHON" -c 'import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join(project["project"]["dependencies"] + project["build-system"]["requires"]))' \
    "$CHECKOUT/pyproject.toml")
"$HOST_PYTHON" -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$WHEELS" \
    "${REQUIREMENTS[@]}" 2> >(grep -v "is ignored" >&2)
rm -rf "$ROOTFS/root/wheels" "$ROOTFS/root/model" "$ROOTFS$SRC_IN_ROOT"
cp -r "$WHEELS" "$ROOTFS/root/wheels" && cp -r "$MODEL_DIR" "$ROOTFS/root/model"
mkdir -p "$ROOTFS$SRC_IN_ROOT"
(cd "$CHECKOUT" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$ROOTFS$SRC_IN_ROOT"
"${NSPAWN[@]}" --pipe "$SRC_IN_ROOT/deploy/install.sh" --model-dir /root/model \
    --pip-option=--no-index --pip-option=--find-links=/root/wheels 2>&1 \
    | grep -v "Attempted to remove" | tee "$LOG_DIR/systemd-check-install.log" | tail -4

stage "3. boot the root with systemd (the units are enabled: they start at boot)"
"${NSPAWN[@]}" -b > "$LOG_DIR/systemd-check-boot.log" 2>&1 &
NSPAWN_PID=$!
LEADER=""
in_container() { nsenter -t "$LEADER" -a "$@"; }
cleanup() {
    if [ -n "$LEADER" ]; then in_container systemctl poweroff 2>/dev/null || true; fi
    sleep 5; kill "$NSPAWN_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 60); do     # nice execs systemd-nspawn; its child becomes the container's systemd
    child=$(pgrep -P "$NSPAWN_PID" | head -1 || true)
    if [ -n "$child" ] && [ "$(ps -o comm= -p "$child")" = systemd ]; then LEADER=$child; break; fi
    sleep 1
done
[ -n "$LEADER" ] || die "the container did not boot (log: $LOG_DIR/systemd-check-boot.log)"
for _ in $(seq 60); do
    state=$(in_container systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 1
done
echo "container systemd: $(in_container systemctl --version | head -1), state $state"
echo "pipeline running for $RUN_S s ..."
sleep "$RUN_S"

stage "4. all three up, no restarts, predictions at the sink"
failures=0
check() {  # description, command...
    local description="$1"; shift
    if "$@"; then echo "  ok    $description"; else echo "  FAIL  $description"; failures=$((failures + 1)); fi
}
restarts() { in_container systemctl show -p NRestarts --value "$1.service"; }
for service in "${SERVICES[@]}"; do
    check "$service active, $(restarts "$service") restarts" \
        test "$(in_container systemctl is-active "$service")" = active -a "$(restarts "$service")" = 0
done
in_container journalctl -b -u 'signstream-*' --no-pager -o cat > "$LOG_DIR/systemd-check-journal.log"   # this boot
sink_status=$(grep "stream-sink INFO running" "$LOG_DIR/systemd-check-journal.log" | tail -1)
echo "  last sink status: ${sink_status#* INFO }"
check "predictions reached the sink" grep -q "predictions=[1-9]" <<< "$sink_status"
check "no sandbox refusals or tracebacks in the journal" \
    bash -c "! grep -m 3 -E 'Operation not permitted|Address family not supported|Traceback|Bad system call' '$LOG_DIR/systemd-check-journal.log'"

stage "5. a crash is restarted, a config error is not"
infer_pid=$(in_container systemctl show -p MainPID --value signstream-infer.service)
in_container kill -SEGV "$infer_pid"
sleep 6   # RestartSec=2, then start-up
check "signstream-infer restarted after SIGSEGV ($(restarts signstream-infer) restart)" \
    test "$(in_container systemctl is-active signstream-infer)" = active -a "$(restarts signstream-infer)" = 1
CONFIG="$ROOTFS/etc/signstream/signstream.toml"
cp -p "$CONFIG" "$LOG_DIR/systemd-check-config.backup"
printf '\n[no_such_section]\nkey = 1\n' >> "$CONFIG"
in_container systemctl restart signstream-sink.service || true
sleep 8
result=$(in_container systemctl show -p Result --value signstream-sink.service)
status=$(in_container systemctl show -p ExecMainStatus --value signstream-sink.service)
check "signstream-sink with a bad config: exit status $status, result $result, not restarted" \
    test "$status" = 2 -a "$(in_container systemctl is-active signstream-sink)" != active -a "$(restarts signstream-sink)" = 0
in_container journalctl -u signstream-sink --no-pager -o cat -n 3 | grep -i "no_such_section" | sed 's/^/  journal: /' || true
cp -p "$LOG_DIR/systemd-check-config.backup" "$CONFIG"
in_container systemctl reset-failed signstream-sink.service
in_container systemctl start signstream-sink.service
sleep 3
check "signstream-sink back after fixing the config" test "$(in_container systemctl is-active signstream-sink)" = active

stage "6. install.sh again on the running system: nothing changes, nothing restarts"
pids_before=$(for service in "${SERVICES[@]}"; do in_container systemctl show -p MainPID --value "$service"; done)
in_container "$SRC_IN_ROOT/deploy/install.sh" --model-dir /root/model \
    --pip-option=--no-index --pip-option=--find-links=/root/wheels > "$LOG_DIR/systemd-check-install-2.log" 2>&1 || true
tail -2 "$LOG_DIR/systemd-check-install-2.log" | sed 's/^/  /'
check "second install: nothing to change" grep -q "nothing to change" "$LOG_DIR/systemd-check-install-2.log"
pids_after=$(for service in "${SERVICES[@]}"; do in_container systemctl show -p MainPID --value "$service"; done)
check "no daemon restarted by it (main PIDs $(echo $pids_after))" test "$pids_before" = "$pids_after"

if [ -n "${MODEL_UPDATE_DIR:-}" ]; then
    stage "6b. model update: install.sh --model-dir with another model restarts the running daemons"
    rm -rf "$ROOTFS/root/model-update" && cp -r "$MODEL_UPDATE_DIR" "$ROOTFS/root/model-update"
    new_id=$("$HOST_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["model_id"])' "$MODEL_UPDATE_DIR/model_card.json")
    infer_before=$(in_container systemctl show -p MainPID --value signstream-infer.service)
    in_container "$SRC_IN_ROOT/deploy/install.sh" --model-dir /root/model-update \
        --pip-option=--no-index --pip-option=--find-links=/root/wheels > "$LOG_DIR/systemd-check-install-3.log" 2>&1 || true
    sleep 8
    infer_after=$(in_container systemctl show -p MainPID --value signstream-infer.service)
    check "signstream-infer restarted by the update (main PID $infer_before -> $infer_after)" \
        test "$infer_before" != "$infer_after" -a "$(in_container systemctl is-active signstream-infer)" = active
    check "it loaded the new model $new_id" \
        bash -c "nsenter -t $LEADER -a journalctl -b -u signstream-infer -o cat --no-pager | grep 'loaded model' | tail -1 | grep -q '$new_id'"
fi

stage "7. stopping signstream.target stops all three"
in_container systemctl stop signstream.target
sleep 3
for service in "${SERVICES[@]}"; do
    check "$service stopped" test "$(in_container systemctl is-active "$service" || true)" = inactive
done

stage "result"
if [ "$failures" -gt 0 ]; then die "$failures check(s) failed (journal: $LOG_DIR/systemd-check-journal.log)"; fi
echo "systemd-check: all checks passed"
