#!/usr/bin/env bash
# Install or upgrade the Floorwalker gateway agent on a Debian / Raspberry Pi OS gateway.
#
#   sudo deploy/gateway/install.sh --store-config store.yaml --gateway gw-entrance \
#        --mqtt-url mqtt://store-server.local:1883 [--credentials gw-entrance.json] [--dry-run]
#
# What it does (each step is printed; --dry-run prints and does nothing):
#   1. apt packages: python3-venv and bluez (BLE) if missing (OpenCV is the headless wheel);
#   2. a system user `floorwalker` (groups bluetooth, video), no login, no home but the state dir;
#   3. a new venv /opt/floorwalker/venv-<version>-<timestamp> built from this checkout with
#      the pinned constraints, then the symlink /opt/floorwalker/venv switched to it in one
#      rename (the running agent keeps its old venv until restarted; the last 2 are kept
#      for rollback: point the symlink back and restart);
#   4. /etc/floorwalker/: gateway.yaml (from gateway.yaml.tmpl, only if missing), store.yaml,
#      credentials.json (0640 root:floorwalker, from `floorwalker provision`), edge.env (broker URL,
#      and FLOORWALKER_MQTT_CREDENTIALS naming credentials.json when there is one);
#   5. the systemd unit, daemon-reload, enable, and (re)start.
# The state directory /var/lib/floorwalker (the gateway's outbox) is created by systemd
# (StateDirectory=) and never touched here: an upgrade keeps whatever is queued in it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PREFIX=/opt/floorwalker
ETC=/etc/floorwalker
UNIT_DIR=/etc/systemd/system
USER_NAME=floorwalker
KEEP_VENVS=2
# The gateway file against the store file, as `floorwalker edge --gateway-config` checks it.
CHECK='import sys; from pathlib import Path
from edge_agent.gateway_config import check_against_store, load_gateway_config
from floorwalker.config import load_store_config
from floorwalker.errors import ConfigError
gw = Path(sys.argv[1])
try:
    check_against_store(load_gateway_config(gw), load_store_config(Path(sys.argv[2])), gw)
except ConfigError as exc:
    sys.exit(f"error: {exc}")'

store_config=""
gateway=""
mqtt_url=""
credentials=""
camera_host="192.0.2.10"
dry_run=0

usage() {
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

die() {
  echo "error: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --store-config) store_config="${2:?--store-config needs a file}"; shift 2 ;;
    --gateway) gateway="${2:?--gateway needs an id}"; shift 2 ;;
    --mqtt-url) mqtt_url="${2:?--mqtt-url needs a URL}"; shift 2 ;;
    --credentials) credentials="${2:?--credentials needs a file}"; shift 2 ;;
    --camera-host) camera_host="${2:?--camera-host needs a host}"; shift 2 ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "error: unknown option $1" >&2; usage 2 ;;
  esac
done

[ -n "$store_config" ] || die "--store-config FILE is required (the store's layout YAML)"
[ -f "$store_config" ] || die "--store-config $store_config: no such file"
[ -n "$gateway" ] || die "--gateway ID is required (this gateway's id in the store config)"
[[ "$gateway" =~ ^[a-z0-9][a-z0-9_-]{0,47}$ ]] || die "--gateway $gateway: ids are lower-case letters, digits, - and _"
[ -n "$mqtt_url" ] || die "--mqtt-url mqtt://HOST:PORT is required (the store server's broker)"
[[ "$mqtt_url" =~ ^mqtts?://[^/]+$ ]] || die "--mqtt-url $mqtt_url: expected mqtt://host:port"
if [ -n "$credentials" ] && [ ! -f "$credentials" ]; then
  die "--credentials $credentials: no such file (make it with \`floorwalker provision gateway $gateway --secrets ...\`)"
fi
store_id="$(sed -n 's/^store:[[:space:]]*\([a-z0-9_-]*\).*/\1/p' "$store_config" | head -n 1)"
[ -n "$store_id" ] || die "$store_config: no top-level 'store:' id found"

# Every change goes through run: printed, and executed unless --dry-run.
run() {
  printf '+ %s\n' "$*"
  if [ "$dry_run" -eq 0 ]; then
    "$@"
  fi
}

# Write stdin to a file (mode, owner) through run, so a dry run shows it too.
put() {
  local dest="$1" mode="$2" owner="$3" tmp
  tmp="$(mktemp)"
  cat >"$tmp"
  run install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$dest"
  rm -f "$tmp"
}

if [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo), or with --dry-run to see what would be done"
fi
command -v apt-get >/dev/null 2>&1 || die "this installer is for Debian / Raspberry Pi OS (apt-get not found)"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -n 1)"
stamp="$(date -u +%Y%m%d%H%M%S)"
venv="$PREFIX/venv-$version-$stamp"

echo "Floorwalker gateway $gateway of store $store_id: version $version into $venv"

# 1. System packages.
missing=()
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v bluetoothctl >/dev/null 2>&1 || missing+=(bluez)
if [ ${#missing[@]} -gt 0 ]; then
  run apt-get update
  run apt-get install -y --no-install-recommends "${missing[@]}"
fi

# 2. The service user (the unit runs as it; BLE through BlueZ needs group bluetooth).
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
  run adduser --system --group --home /var/lib/floorwalker --no-create-home "$USER_NAME"
fi
for group in bluetooth video; do
  if getent group "$group" >/dev/null 2>&1; then
    run usermod -a -G "$group" "$USER_NAME"
  fi
done

# 3. A fresh venv beside the old one, then one atomic symlink switch.
run install -d -m 0755 "$PREFIX"
run python3 -m venv "$venv"
run "$venv/bin/pip" install --quiet --upgrade pip
run "$venv/bin/pip" install --quiet -c "$REPO/constraints.txt" "${REPO}[gateway]"
run "$venv/bin/floorwalker" --help
run ln -sfn "$venv" "$PREFIX/venv.new"
run mv -T "$PREFIX/venv.new" "$PREFIX/venv"
run install -D -m 0644 "$REPO/deploy/README.md" "$PREFIX/share/README.md"

# 4. Configuration (an existing gateway.yaml is the operator's: never overwritten).
run install -d -m 0750 -o root -g "$USER_NAME" "$ETC"
if [ ! -f "$ETC/gateway.yaml" ]; then
  sed -e "s/@STORE@/$store_id/" -e "s/@GATEWAY@/$gateway/" -e "s/@CAMERA_HOST@/$camera_host/" \
    "$HERE/gateway.yaml.tmpl" | put "$ETC/gateway.yaml" 0640 "root:$USER_NAME"
else
  echo "keeping $ETC/gateway.yaml"
fi
run install -m 0640 -o root -g "$USER_NAME" "$store_config" "$ETC/store.yaml"
# The agent logs in with credentials.json when there is one (given now, or kept from an
# earlier install): edge.env names it as FLOORWALKER_MQTT_CREDENTIALS (--mqtt-credentials).
creds_line="#FLOORWALKER_MQTT_CREDENTIALS=$ETC/credentials.json"
if [ -n "$credentials" ]; then
  run install -m 0640 -o root -g "$USER_NAME" "$credentials" "$ETC/credentials.json"
  creds_line="FLOORWALKER_MQTT_CREDENTIALS=$ETC/credentials.json"
elif [ -f "$ETC/credentials.json" ]; then
  echo "keeping $ETC/credentials.json"
  creds_line="FLOORWALKER_MQTT_CREDENTIALS=$ETC/credentials.json"
fi
sed -e "s#@MQTT_URL@#$mqtt_url#" -e "s|@MQTT_CREDENTIALS@|$creds_line|" "$HERE/edge.env.tmpl" \
  | put "$ETC/edge.env" 0640 "root:$USER_NAME"
# Validate before the restart: a broken file stops here with one line, the old agent keeps running.
run "$venv/bin/python" -c "$CHECK" "$ETC/gateway.yaml" "$ETC/store.yaml"

# 5. The unit; restart picks up the new venv. /var/lib/floorwalker (outbox) is left as it is.
run install -m 0644 "$HERE/floorwalker-edge.service" "$UNIT_DIR/floorwalker-edge.service"
run systemctl daemon-reload
run systemctl enable floorwalker-edge.service
run systemctl restart floorwalker-edge.service

# Keep the newest $KEEP_VENVS venvs (rollback: ln -sfn OLD $PREFIX/venv && systemctl restart).
if [ "$dry_run" -eq 0 ]; then
  mapfile -t old < <(find "$PREFIX" -maxdepth 1 -name 'venv-*' -type d | sort -r | tail -n +$((KEEP_VENVS + 1)))
  for dir in "${old[@]}"; do
    [ "$(readlink -f "$PREFIX/venv")" = "$dir" ] || run rm -rf "$dir"
  done
fi
echo "installed: systemctl status floorwalker-edge; journalctl -u floorwalker-edge -f"
