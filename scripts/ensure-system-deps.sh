#!/usr/bin/env bash
# Install the system packages Floorwalker needs (Debian/Ubuntu) if any are missing:
# Mosquitto and Redis (started by the project itself, never the system services),
# Python's venv module, and Chromium (the real-browser tests of the handheld and dashboard).
# Without root or sudo it prints the exact command to run instead.
set -euo pipefail

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/sbin/redis-server ] || missing+=(redis-server)
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || missing+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# OpenCV's sample pedestrian video (vtest.avi): camera footfall tests, eval and bench.
[ -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || missing+=(opencv-doc)
# The browser tests drive Debian's Chromium through Playwright (no browser download).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Deployment checks (tests/unit/test_deploy.py): systemd's unit verifier and shellcheck.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
# Prometheus's rule checker for deploy/prometheus/alerts.yml (promtool, in the prometheus package).
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# The compose file's schema check (docker-compose config; no container engine needed).
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
# The local Redis Cluster of the scale test joins its nodes with redis-cli (redis-tools).
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)

[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  runner=(bash -c)
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  runner=(sudo bash -c)
else
  echo "error: missing system packages: ${missing[*]}. Install them with: sudo $cmd" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing ${missing[*]} and this is not a Debian-like system: install them with your package manager" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
DEBIAN_FRONTEND=noninteractive "${runner[@]}" "$cmd" >/dev/null
