#!/usr/bin/env bash
# Install and run signstream on an emulated arm64 Debian 12 (what a 64-bit Raspberry Pi OS 12 is
# built on). NOT part of CI: it needs root, debootstrap, qemu-user-static and a few GB of disk, and
# takes tens of minutes.
#
#   sudo deploy/emulate/arm64-check.sh
#
# 1. builds a Debian 12 (bookworm) arm64 root with debootstrap (once; kept in $ROOTFS),
# 2. downloads the runtime's arm64 wheels on the host (pip download --platform), so the install in
#    the root runs offline and pip's resolver is not itself emulated for the downloads,
# 3. runs deploy/install.sh inside the root (chroot; every arm64 program runs under qemu), twice:
#    the second run must report "nothing to change",
# 4. checks the installed units with the root's own systemd-analyze verify (systemd 252, arm64),
# 5. measures numba compile time (empty cache) vs cache load, and LiteRT inference latency,
# 6. replays a recording (written on the host by the synthetic signer) through stream-acquire ->
#    stream-infer -> stream-sink running as user signstream in the root, and prints the events,
# 7. calibrates a new person: stream-calibrate --from a guided recording (50 signs x 2 rounds of a
#    simulated person the model never saw, written on the host) as user signstream, with the
#    adaptation's CPU seconds beside the same run on the host.
#
# Figures printed are EMULATED (qemu user mode on the host CPU), not Raspberry Pi figures.
#
# Environment: ROOTFS (default /work/arm64-root), WHEELS (/work/arm64-wheels), LOG_DIR
# (/work/arm64-logs), MIRROR (http://deb.debian.org/debian), HOST_PYTHON (the checkout's .venv
# python, used to download wheels and write the recording), MODEL_DIR (models/student),
# REPLAY_S (replay duration, default 60), NICE (default 19: share the host politely), UNTIL (stop
# after this stage number, e.g. UNTIL=6 to install and verify only), SKIP (stage numbers to skip,
# e.g. SKIP="3 5 6" to reuse the wheels and the install already in ROOTFS), MEASURE_COLD=0 (keep
# the numba cache: measure the warm start only).
set -euo pipefail

CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROOTFS="${ROOTFS:-/work/arm64-root}"
WHEELS="${WHEELS:-/work/arm64-wheels}"
LOG_DIR="${LOG_DIR:-/work/arm64-logs}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
HOST_PYTHON="${HOST_PYTHON:-$CHECKOUT/.venv/bin/python}"
MODEL_DIR="${MODEL_DIR:-$CHECKOUT/models/student}"
REPLAY_S="${REPLAY_S:-60}"
NICE="${NICE:-19}"
UNTIL="${UNTIL:-10}"
MEASURE_COLD="${MEASURE_COLD:-1}"
SKIP=" ${SKIP:-} "
SRC_IN_ROOT=/usr/local/src/signstream   # readable by the service user, unlike /root
RUN="nice -n $NICE"

stage() {
    if [ "${1%%.*}" -gt "$UNTIL" ]; then echo; echo "== stopping before stage $1 (UNTIL=$UNTIL)"; exit 0; fi
    case "$SKIP" in *" ${1%%.*} "*) echo; echo "== skipping stage $1 (SKIP)"; return 1 ;; esac
    echo; echo "== $(date -u +%H:%M:%S) $*"
}
die() { echo "arm64-check: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
case "$ROOTFS" in "$CHECKOUT"/*) die "keep ROOTFS outside the checkout" ;; esac
mkdir -p "$LOG_DIR"

stage "1. tools and binfmt_misc"
missing=()
for tool in debootstrap:debootstrap qemu-aarch64-static:qemu-user-static update-binfmts:binfmt-support; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 || update-binfmts --import qemu-aarch64
fi
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 binfmt handler is not enabled"

stage "2. Debian 12 arm64 root in $ROOTFS"
if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
    start=$(date +%s)
    $RUN debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,ca-certificates,systemd,procps \
        bookworm "$ROOTFS" "$MIRROR" > "$LOG_DIR/debootstrap.log" 2>&1 \
        || { tail -20 "$LOG_DIR/debootstrap.log"; die "debootstrap failed (log: $LOG_DIR/debootstrap.log)"; }
    echo "debootstrap took $(( $(date +%s) - start )) s"
fi
echo "root: $(cat "$ROOTFS/etc/debian_version"), $(chroot "$ROOTFS" uname -m) (emulated), $(chroot "$ROOTFS" python3 --version), $(chroot "$ROOTFS" systemctl --version | head -1)"

MOUNTED=()
DAEMON_PIDS=()
cleanup() {
    for pid in ${DAEMON_PIDS[@]+"${DAEMON_PIDS[@]}"}; do kill "$pid" 2>/dev/null || true; done
    for (( index=${#MOUNTED[@]}-1; index>=0; index-- )); do umount -l "${MOUNTED[$index]}" || true; done
}
trap cleanup EXIT
for mount_point in proc sys dev; do
    if ! mountpoint -q "$ROOTFS/$mount_point"; then
        case "$mount_point" in
            proc) mount -t proc proc "$ROOTFS/proc" ;;
            *) mount --rbind "/$mount_point" "$ROOTFS/$mount_point"; mount --make-rslave "$ROOTFS/$mount_point" ;;
        esac
        MOUNTED+=("$ROOTFS/$mount_point")
    fi
done
# Under qemu user mode /proc/cpuinfo is the HOST's (x86): LiteRT's CPU detection (XNNPACK's
# cpuinfo) finds no ARM "CPU part" there and crashes with SIGSEGV while creating the interpreter.
# A Raspberry Pi 4's CPU description (Cortex-A72, one entry per host CPU, so that it agrees with
# /sys/devices/system/cpu) is bound over it. A real Pi has its own: this is emulation only.
CPUINFO="$LOG_DIR/cpuinfo-pi4"
for cpu in $(seq 0 $(( $(nproc --all) - 1 ))); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$cpu"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
done > "$CPUINFO"
printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B (cpuinfo written by arm64-check.sh)\n' >> "$CPUINFO"
if ! grep -q "CPU part" "$ROOTFS/proc/cpuinfo"; then
    mount --bind "$CPUINFO" "$ROOTFS/proc/cpuinfo"
    MOUNTED+=("$ROOTFS/proc/cpuinfo")
fi
in_root() { $RUN chroot "$ROOTFS" "$@"; }

if stage "3. arm64 wheels for the runtime (downloaded on the host)"; then
    mapfile -t REQUIREMENTS < <("$HOST_PYTHON" -c 'import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join(project["project"]["dependencies"] + project["build-system"]["requires"]))' \
        "$CHECKOUT/pyproject.toml")
    # pip does not widen --platform to older compatible tags: list every manylinux glibc <= 2.36
    # (bookworm's glibc).
    PLATFORMS=(--platform manylinux2014_aarch64)
    for glibc_minor in 17 24 26 27 28 29 31 34 35 36; do PLATFORMS+=(--platform "manylinux_2_${glibc_minor}_aarch64"); done
    "$HOST_PYTHON" -m pip download -q --disable-pip-version-check --only-binary=:all: \
        "${PLATFORMS[@]}" --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
        -d "$WHEELS" "${REQUIREMENTS[@]}"
    ls "$WHEELS" | sed 's/^/  /'
    if ls "$WHEELS" | grep -qi '^tensorflow'; then die "a TensorFlow wheel was pulled in by the runtime requirements"; fi
    rm -rf "$ROOTFS/root/wheels" && cp -r "$WHEELS" "$ROOTFS/root/wheels"
fi

stage "4. the checkout and the model into the root"
rm -rf "$ROOTFS$SRC_IN_ROOT" && mkdir -p "$ROOTFS$SRC_IN_ROOT"
(cd "$CHECKOUT" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$ROOTFS$SRC_IN_ROOT"
[ -f "$MODEL_DIR/model_card.json" ] || die "no model card in $MODEL_DIR (set MODEL_DIR)"
rm -rf "$ROOTFS/root/model" && cp -r "$MODEL_DIR" "$ROOTFS/root/model"
echo "model: $(ls "$ROOTFS/root/model" | tr '\n' ' ')"

if stage "5. deploy/install.sh inside the root (emulated)"; then
    INSTALL=("$SRC_IN_ROOT/deploy/install.sh" --model-dir /root/model
             --pip-option=--no-index --pip-option=--find-links=/root/wheels)
    start=$(date +%s.%N)
    in_root "${INSTALL[@]}" 2>&1 | tee "$LOG_DIR/install-1.log" | tail -25
    FIRST_INSTALL_S=$(awk "BEGIN {print $(date +%s.%N) - $start}")
    start=$(date +%s.%N)
    in_root "${INSTALL[@]}" 2>&1 | tee "$LOG_DIR/install-2.log"
    SECOND_INSTALL_S=$(awk "BEGIN {print $(date +%s.%N) - $start}")
    grep -q "nothing to change" "$LOG_DIR/install-2.log" || die "the second install changed something (log: $LOG_DIR/install-2.log)"
    printf 'install: first %.0f s, second %.0f s (no changes)\n' "$FIRST_INSTALL_S" "$SECOND_INSTALL_S"
    in_root /opt/signstream/venv/bin/python -c 'import importlib.util as u; print("tensorflow in venv:", u.find_spec("tensorflow") is not None)'
    echo "enabled: $(in_root systemctl is-enabled signstream.target signstream-acquire.service signstream-infer.service signstream-sink.service | tr '\n' ' ')"
fi

if stage "6. systemd-analyze verify (arm64 systemd 252 in the root)"; then
    in_root systemd-analyze verify --man=no /etc/systemd/system/signstream.target \
        /etc/systemd/system/signstream-{acquire,infer,sink}.service && echo "units verify: OK"
fi

SIGNSTREAM_UID=$(awk -F: '$1 == "signstream" {print $3}' "$ROOTFS/etc/passwd")
SIGNSTREAM_GID=$(awk -F: '$1 == "signstream" {print $4}' "$ROOTFS/etc/passwd")
# What the units give the daemons: their user, the config, the numba and design cache directories.
as_service() {
    $RUN chroot --userspec="$SIGNSTREAM_UID:$SIGNSTREAM_GID" "$ROOTFS" \
        env -i PATH=/usr/bin:/bin HOME=/var/lib/signstream PYTHONUNBUFFERED=1 \
        NUMBA_CACHE_DIR=/var/cache/signstream/numba SIGNSTREAM_CACHE_DIR=/var/cache/signstream "$@"
}
# In the background, exec all the way down (nice -> chroot -> env -> python): $! is the daemon
# itself, so stopping it by that PID leaves no emulated process behind.
as_service_in_background() {  # log file, command...
    local log="$1"; shift
    ( exec $RUN chroot --userspec="$SIGNSTREAM_UID:$SIGNSTREAM_GID" "$ROOTFS" \
        env -i PATH=/usr/bin:/bin HOME=/var/lib/signstream PYTHONUNBUFFERED=1 \
        NUMBA_CACHE_DIR=/var/cache/signstream/numba SIGNSTREAM_CACHE_DIR=/var/cache/signstream "$@" ) > "$log" 2>&1 &
}

if stage "7. numba compile time and inference latency (EMULATED)"; then
if [ "$MEASURE_COLD" = 1 ]; then
    rm -rf "$ROOTFS/var/cache/signstream/numba/"* "$ROOTFS/var/cache/signstream/designs/"*
    as_service /opt/signstream/venv/bin/python "$SRC_IN_ROOT/deploy/emulate/measure.py" \
        --config /etc/signstream/signstream.toml --label "cold numba cache" | tee "$LOG_DIR/measure-cold.json" || echo "measure failed (above)"
else
    echo '{"label": "cold numba cache: not measured in this run (MEASURE_COLD=0)"}' > "$LOG_DIR/measure-cold.json"
fi
as_service /opt/signstream/venv/bin/python "$SRC_IN_ROOT/deploy/emulate/measure.py" \
    --config /etc/signstream/signstream.toml --label "warm numba cache" | tee "$LOG_DIR/measure-warm.json" || echo "measure failed (above)"
fi

if stage "8. replay through the daemons (as user signstream, EMULATED)"; then
"$HOST_PYTHON" "$CHECKOUT/deploy/emulate/make_replay.py" --seconds "$REPLAY_S" \
    --out "$ROOTFS/var/lib/signstream/replay.h5" > "$LOG_DIR/replay-truth.txt"
chown "$SIGNSTREAM_UID:$SIGNSTREAM_GID" "$ROOTFS/var/lib/signstream/replay.h5"
# The root shares the host's network: fresh loopback ports, so nothing else on the host collides.
"$HOST_PYTHON" - "$ROOTFS/etc/signstream/signstream.toml.default" "$ROOTFS/etc/signstream/replay.toml" <<'EOF'
import re, socket, sys
text = open(sys.argv[1]).read()
def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
for key in ("frames", "predictions", "events"):
    text = re.sub(rf'(?m)^{key} = "tcp://127\.0\.0\.1:\d+"', f'{key} = "tcp://127.0.0.1:{free_port()}"', text)
text = re.sub(r'(?m)^source = "synthetic"', 'source = "replay"', text)
text = re.sub(r'(?m)^(\[acquire\.replay\]\npath = )""', r'\1"/var/lib/signstream/replay.h5"', text)
assert '/var/lib/signstream/replay.h5' in text and 'source = "replay"' in text
open(sys.argv[2], "w").write(text)
EOF
chmod 0644 "$ROOTFS/etc/signstream/replay.toml"
REPLAY_CONFIG=/etc/signstream/replay.toml
start_daemon() {  # name: started like its unit's ExecStart, logs to LOG_DIR/NAME.log
    as_service_in_background "$LOG_DIR/$1.log" "/opt/signstream/venv/bin/$1" --config "$REPLAY_CONFIG"
    DAEMON_PIDS+=($!)
}
wait_ready() {  # name: its log shows the daemon loop running (start-up is slow under emulation)
    local deadline=$(( $(date +%s) + 300 ))
    until grep -q " running" "$LOG_DIR/$1.log" 2>/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || die "$1 not running after 300 s: $(tail -3 "$LOG_DIR/$1.log")"
        sleep 1
    done
    echo "$1 ready after $(( $(date +%s) - $2 )) s (EMULATED start-up: imports, model load, numba cache)"
}
SUBSCRIBE_TIMEOUT=$(( REPLAY_S + 600 ))
( exec $RUN chroot --userspec="$SIGNSTREAM_UID:$SIGNSTREAM_GID" "$ROOTFS" env -i PATH=/usr/bin:/bin \
    /opt/signstream/venv/bin/stream-subscribe --config "$REPLAY_CONFIG" --status --timeout "$SUBSCRIBE_TIMEOUT" \
  ) > "$LOG_DIR/events.jsonl" 2> "$LOG_DIR/stream-subscribe.log" &
SUBSCRIBER=$!
DAEMON_PIDS+=("$SUBSCRIBER")
# Consumers first, so that no replayed frame is published before infer listens.
started=$(date +%s); start_daemon stream-sink; wait_ready stream-sink "$started"
started=$(date +%s); start_daemon stream-infer; wait_ready stream-infer "$started"
started=$(date +%s); start_daemon stream-acquire
ACQUIRE_PID=${DAEMON_PIDS[3]}
# With loop = false the acquire daemon may end with the recording; otherwise stop after it.
while kill -0 "$ACQUIRE_PID" 2>/dev/null && [ $(( $(date +%s) - started )) -lt $(( REPLAY_S + 60 )) ]; do
    sleep 2
done
sleep 10                                   # let infer and sink drain
for pid in "${DAEMON_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
wait || true
DAEMON_PIDS=()
echo "replay ran $(( $(date +%s) - started )) s wall for $REPLAY_S s of recording"
for name in stream-acquire stream-infer stream-sink; do
    echo "--- $name (last lines of its log)"; tail -6 "$LOG_DIR/$name.log"
done
fi

if stage "9. events (EMULATED arm64) vs the recording's ground truth"; then
"$HOST_PYTHON" "$CHECKOUT/deploy/emulate/summarise.py" "$LOG_DIR/events.jsonl" "$LOG_DIR/replay-truth.txt" \
    "$LOG_DIR/measure-cold.json" "$LOG_DIR/measure-warm.json" | tee "$LOG_DIR/summary.txt"
fi

if stage "10. calibration of a new person: stream-calibrate --from a guided recording (as user signstream, EMULATED)"; then
# People seed 1, signer 0: "signer-01" of data/people-seed1 (docs/RESULTS.md "A new user"), a person
# the shipped model never saw; every sign twice, as stream-calibrate's guided session prompts them.
"$HOST_PYTHON" "$CHECKOUT/deploy/emulate/make_replay.py" --guided 2 --seed 1 --signer 0 \
    --out "$ROOTFS/var/lib/signstream/calibration.h5" > "$LOG_DIR/calibration-truth.txt"
chown "$SIGNSTREAM_UID:$SIGNSTREAM_GID" "$ROOTFS/var/lib/signstream/calibration.h5"
rm -rf "$ROOTFS/var/lib/signstream/calibration-check"
start=$(date +%s.%N)
as_service /opt/signstream/venv/bin/stream-calibrate --config /etc/signstream/signstream.toml --user signer-01 \
    --out /var/lib/signstream/calibration-check --from /var/lib/signstream/calibration.h5 \
    > "$LOG_DIR/calibration.json" 2> "$LOG_DIR/calibration.log" || { tail -5 "$LOG_DIR/calibration.log"; die "stream-calibrate failed"; }
CALIBRATE_WALL_S=$(awk "BEGIN {print $(date +%s.%N) - $start}")
HOST_CALIBRATION=$(mktemp -d)
"$HOST_PYTHON" -m stream.tools.calibrate --model "$MODEL_DIR/model_card.json" --user signer-01 \
    --out "$HOST_CALIBRATION/card" --from "$ROOTFS/var/lib/signstream/calibration.h5" 2>/dev/null | head -1 > "$LOG_DIR/calibration-host.json"
rm -rf "$HOST_CALIBRATION"
"$HOST_PYTHON" - "$LOG_DIR/calibration.json" "$LOG_DIR/calibration-host.json" "$CALIBRATE_WALL_S" <<'EOF' | tee -a "$LOG_DIR/summary.txt"
import json, sys
emulated = json.loads(open(sys.argv[1]).readline())
host = json.loads(open(sys.argv[2]).readline())
print(f"\ncalibration (EMULATED arm64): {emulated['windows']} sign windows, k = {emulated['k']}, "
      f"cross-validated accuracy {emulated['cross_validated_accuracy']:.3f}, adaptation {emulated['seconds']:.1f} s CPU "
      f"(the model on the windows {emulated['model_seconds']:.1f} s, alignment and the head's fit {emulated['fit_seconds']:.1f} s; "
      f"the whole stream-calibrate: {float(sys.argv[3]):.0f} s wall)\nhost, native: {host['seconds']:.2f} s CPU "
      f"(model {host['model_seconds']:.2f} s, fit {host['fit_seconds']:.2f} s), accuracy {host['cross_validated_accuracy']:.3f}; "
      f"emulated / host: {emulated['seconds'] / host['seconds']:.0f}x (model {emulated['model_seconds'] / host['model_seconds']:.0f}x, "
      f"fit {emulated['fit_seconds'] / host['fit_seconds']:.0f}x)")
EOF
fi
