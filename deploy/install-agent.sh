#!/usr/bin/env bash
# Install the lightd agent on this host as a systemd service. Run as root; safe to run again
# (an upgrade is the same command): it never overwrites an existing config or token.
#
#   sudo deploy/install-agent.sh --wheels DIR           # from a wheel directory, no index
#                                                       #   (scripts/build-images --wheels-only)
#   sudo deploy/install-agent.sh --package 'lightd-agent==0.1.0'   # from your package index
#   deploy/install-agent.sh --wheels DIR --dry-run      # print what it would do; change nothing
#
# What it does, each step skipped when already done:
#   1. the system user `lightd` (no login, no home);
#   2. a virtual environment in /opt/lightd with lightd-agent installed (upgraded on re-runs);
#   3. /etc/lightd/config.json from `lightd config` (complete defaults, a fresh token),
#      root:lightd 0640, only when it does not exist yet;
#   4. /var/lib/lightd (storage.base_path) owned by lightd;
#   5. /etc/systemd/system/lightd.service (from deploy/systemd/), enabled and started, restarted
#      when the agent or the unit changed; then it waits for the agent's /health.
#
# Options (one of --wheels and --package is required: the script never guesses where the
# agent comes from):
#   --wheels DIR     install from the wheels in DIR only (pip --no-index --find-links DIR)
#   --package SPEC   the requirement to install from the configured package index
#   --python PATH    the Python (3.11+) for the virtual environment (default: python3)
#   --no-start       install and enable nothing in systemd (files only)
#   --dry-run        print every step, change nothing
# Environment:
#   LIGHTD_PREFIX    a directory prefixed to every path written (staging, tests). It implies
#                    --no-start, creates no user and changes no ownership; the files still name
#                    the real paths (/opt/lightd, /etc/lightd, ...).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
prefix="${LIGHTD_PREFIX:-}"
prefix="${prefix%/}"

VENV=/opt/lightd
CONFIG_DIR=/etc/lightd
CONFIG="$CONFIG_DIR/config.json"
STATE_DIR=/var/lib/lightd
UNIT=/etc/systemd/system/lightd.service
BIN_LINK=/usr/local/bin/lightd
SERVICE_USER=lightd
UNIT_SOURCE="$here/systemd/lightd.service"

wheels=""
package=""
python="python3"
start=1
dry_run=""

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
die() { echo "error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) wheels="${2:?--wheels needs a directory}"; shift 2 ;;
        --package) package="${2:?--package needs a requirement}"; shift 2 ;;
        --python) python="${2:?--python needs an interpreter}"; shift 2 ;;
        --no-start) start=""; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# Where a real path lands on this run (under LIGHTD_PREFIX when set).
at() { echo "$prefix$1"; }

step() { echo "==> $*"; }
ok() { echo "    ok: $*"; }
# Run a command that changes the system; in --dry-run only say so.
change() {
    if [ -n "$dry_run" ]; then
        echo "    would run: $*"
    else
        echo "    run: $*"
        "$@"
    fi
}

if [ -n "$prefix" ]; then
    start=""
    echo "note: LIGHTD_PREFIX=$prefix: writing under it; no user, no ownership, no systemd"
fi
if [ -n "$dry_run" ]; then
    echo "note: --dry-run: nothing is changed"
fi

# 0. Preflight: everything that can be known before changing anything.
step "checking prerequisites"
if [ -z "$prefix" ] && [ -z "$dry_run" ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo $0 ...), or try --dry-run first"
fi
if [ -z "$wheels" ] && [ -z "$package" ]; then
    die "say where lightd-agent comes from: --wheels DIR (scripts/build-images --wheels-only)" \
        "or --package SPEC (from your package index, e.g. --package 'lightd-agent==0.1.0')"
fi
[ -f "$UNIT_SOURCE" ] || die "the unit file $UNIT_SOURCE is missing (run this from a lightd checkout)"
if [ -n "$wheels" ]; then
    [ -d "$wheels" ] || die "--wheels $wheels is not a directory"
    wheels=$(cd "$wheels" && pwd)
    ls "$wheels"/lightd_agent-*.whl >/dev/null 2>&1 \
        || die "no lightd_agent wheel in $wheels (build one: scripts/build-images --wheels-only)"
fi
if ! "$python" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    die "$python is not a Python 3.11+ with venv (Debian: apt-get install python3 python3-venv)"
fi
ok "$("$python" --version 2>&1) with venv"
if [ -n "$start" ]; then
    command -v systemctl >/dev/null 2>&1 || die "systemctl not found: pass --no-start to install the files only"
    getent group docker >/dev/null 2>&1 \
        || die "the group 'docker' does not exist: install Docker first (the unit joins that group)"
    ok "systemd and the docker group are there"
fi

# 1. The service user.
step "service user $SERVICE_USER"
if [ -n "$prefix" ]; then
    ok "skipped under LIGHTD_PREFIX"
elif id "$SERVICE_USER" >/dev/null 2>&1; then
    ok "exists"
else
    change useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "lightd agent" "$SERVICE_USER"
fi

# 2. The virtual environment and the agent in it.
step "lightd-agent in $VENV"
venv_python="$(at "$VENV")/bin/python"
before=""
if [ -x "$venv_python" ]; then
    ok "virtual environment exists"
    before=$("$(at "$VENV")/bin/lightd" --version 2>/dev/null || true)
else
    change "$python" -m venv "$(at "$VENV")"
fi
pip_args=(install --quiet --disable-pip-version-check --upgrade)
if [ -n "$wheels" ]; then
    pip_args+=(--no-index --find-links "$wheels")
fi
change "$venv_python" -m pip "${pip_args[@]}" "${package:-lightd-agent}"
after=""
if [ -z "$dry_run" ]; then
    after=$("$(at "$VENV")/bin/lightd" --version) || die "the installed lightd does not run"
    if [ "$before" = "$after" ]; then ok "$after (unchanged)"; else ok "$after (was: ${before:-none})"; fi
fi
if [ "$(readlink "$(at "$BIN_LINK")" 2>/dev/null || true)" = "$VENV/bin/lightd" ]; then
    ok "$BIN_LINK links to it"
else
    change mkdir -p "$(dirname "$(at "$BIN_LINK")")"
    change ln -sfn "$VENV/bin/lightd" "$(at "$BIN_LINK")"
fi

# 3. The config, created once. An existing file is the operator's: never rewritten.
step "config $CONFIG"
config_file="$(at "$CONFIG")"
if [ -e "$config_file" ]; then
    ok "exists: kept as it is (token unchanged)"
    if [ -z "$prefix" ] && id "$SERVICE_USER" >/dev/null 2>&1 \
        && ! runuser -u "$SERVICE_USER" -- test -r "$config_file" 2>/dev/null; then
        echo "warning: $SERVICE_USER cannot read $CONFIG, so the service will not start; fix:" \
            "chgrp $SERVICE_USER $CONFIG_DIR $CONFIG && chmod g+rx $CONFIG_DIR && chmod 0640 $CONFIG" >&2
    fi
else
    change install -d -m 0750 "$(at "$CONFIG_DIR")"
    if [ -n "$dry_run" ]; then
        echo "    would write: $CONFIG from \`lightd config\` (complete defaults, a fresh token), mode 0640"
    else
        tmp=$(mktemp "$config_file.XXXXXX")
        trap 'rm -f "$tmp"' EXIT
        chmod 0600 "$tmp"
        "$(at "$VENV")/bin/lightd" config >"$tmp" || die "lightd config failed"
        chmod 0640 "$tmp"
        if [ -z "$prefix" ]; then
            chgrp "$SERVICE_USER" "$tmp" "$(at "$CONFIG_DIR")"
        fi
        # A hard link never replaces a file that appeared meanwhile (mv would).
        ln "$tmp" "$config_file" || die "$CONFIG appeared while writing it; left it alone"
        rm -f "$tmp"
        trap - EXIT
        ok "written with a fresh token"
    fi
fi

# 4. Storage (storage.base_path); the unit's StateDirectory= keeps it owned by lightd too.
step "storage $STATE_DIR"
if [ -d "$(at "$STATE_DIR")" ]; then
    ok "exists"
elif [ -n "$prefix" ]; then
    change install -d -m 0750 "$(at "$STATE_DIR")"
else
    change install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR"
fi

# 5. The unit, then systemd.
step "systemd unit $UNIT"
unit_changed=""
if cmp -s "$UNIT_SOURCE" "$(at "$UNIT")"; then
    ok "up to date"
else
    unit_changed=1
    change mkdir -p "$(dirname "$(at "$UNIT")")"
    change install -m 0644 "$UNIT_SOURCE" "$(at "$UNIT")"
fi

if [ -z "$start" ]; then
    step "systemd: skipped (--no-start or LIGHTD_PREFIX); to start: systemctl enable --now lightd"
else
    step "enabling and starting lightd.service"
    if [ -n "$unit_changed" ]; then change systemctl daemon-reload; fi
    if systemctl is-active --quiet lightd.service; then
        if [ -n "$unit_changed" ] || [ "$before" != "$after" ]; then
            change systemctl restart lightd.service
        else
            ok "running, nothing changed"
        fi
        change systemctl enable --quiet lightd.service
    else
        change systemctl enable --now --quiet lightd.service
    fi
    if [ -z "$dry_run" ]; then
        healthy=""
        for _ in $(seq 1 30); do
            if "$VENV/bin/lightd" status -c "$CONFIG" >/dev/null 2>&1; then healthy=1; break; fi
            sleep 1
        done
        if [ -n "$healthy" ]; then
            ok "the agent answers on /health"
        else
            echo "warning: the agent did not answer within 30 s; see: journalctl -u lightd -n 50" >&2
        fi
    fi
fi

cat <<EOF

${dry_run:+Dry run: nothing was changed. After a real run:}${dry_run:-lightd agent installed.}
  config:  $CONFIG  (the API token is authorization.token; it is not printed here)
  token:   sudo $BIN_LINK token show -c $CONFIG
  status:  sudo $BIN_LINK status -c $CONFIG     logs: journalctl -u lightd -f
Next steps:
  - open port 8070/tcp only to your coordinator or panel (the agent speaks plain HTTP);
  - to join a coordinator, set coordinator{enabled: true, url, token (its auth.agent_token),
    advertise_address (this host's address as the coordinator reaches it)} in $CONFIG;
  - to sync lifecycle updates to a remote, set remote{enabled, url, token} in $CONFIG;
  - after editing: sudo systemctl restart lightd
  - docs/deploy.md has the rest (upgrades: run this script again).
EOF
