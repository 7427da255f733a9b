#!/usr/bin/env bash
# Remove what deploy/install.sh installed.
#
#   sudo deploy/uninstall.sh           # stop + disable the units, remove them, the venv, the models
#                                      # and the numba cache; keep /etc/signstream, /var/lib/signstream
#                                      # (recordings) and the signstream user
#   sudo deploy/uninstall.sh --purge   # also remove those
#
# --root DIR / --prefix DIR as for install.sh (with --root, systemctl and userdel are not called).
set -euo pipefail

die() { echo "uninstall: $*" >&2; exit 1; }
say() { echo "uninstall: $*"; }

ROOT=/
PREFIX=/opt/signstream
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
        --root=*) ROOT="${1#*=}"; shift ;;
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) PREFIX="${1#*=}"; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) die "unknown option '$1'" ;;
    esac
done
case "$PREFIX" in /?*) ;; *) die "--prefix must be an absolute path below /, got '$PREFIX'" ;; esac
[ -d "$ROOT" ] || die "no directory $ROOT"
ROOT="$(cd "$ROOT" && pwd)"
if [ "$ROOT" = / ]; then ROOT=""; fi
LIVE=0
if [ -z "$ROOT" ]; then LIVE=1; fi
if [ "$LIVE" = 1 ] && [ "$(id -u)" != 0 ]; then die "run as root (sudo)"; fi

UNITS=(signstream.target signstream-acquire.service signstream-infer.service signstream-sink.service
       signstream-speak.service signstream-pipeline.service)
if [ "$LIVE" = 1 ] && command -v systemctl >/dev/null; then
    if [ -d /run/systemd/system ]; then
        systemctl stop "${UNITS[@]}" 2>/dev/null || true
    fi
    systemctl -q disable "${UNITS[@]}" 2>/dev/null || true
fi
for unit in "${UNITS[@]}"; do
    rm -f "$ROOT/etc/systemd/system/$unit"
done
if [ "$LIVE" = 1 ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

rm -rf "${ROOT}${PREFIX:?}" "$ROOT/var/cache/signstream"
say "removed $PREFIX, /var/cache/signstream and the units"

if [ "$PURGE" = 1 ]; then
    rm -rf "$ROOT/etc/signstream" "$ROOT/var/lib/signstream" "$ROOT/var/log/signstream"
    if [ "$LIVE" = 1 ] && getent passwd signstream >/dev/null; then userdel signstream; fi
    say "purged /etc/signstream, /var/lib/signstream, /var/log/signstream and the signstream user"
else
    say "kept /etc/signstream, /var/lib/signstream and the signstream user (--purge removes them)"
fi
