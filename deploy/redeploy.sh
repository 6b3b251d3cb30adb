#!/usr/bin/env bash
# Redeploys one Atelier function on this host without losing a request, leaving the others untouched:
#
#   deploy/redeploy.sh FUNCTION [NEW_BINARY]
#
# With NEW_BINARY, it is installed as /usr/lib/atelier/bin/FUNCTION (copied next to it, then renamed over
# it, so nothing ever runs a half-written file; the old one is kept as FUNCTION.previous, and
# `deploy/redeploy.sh FUNCTION /usr/lib/atelier/bin/FUNCTION.previous` rolls back). Then each running
# instance atelier-FUNCTION@N.service is restarted in turn: systemd sends SIGTERM, the process finishes
# the request it is serving and exits, a new process starts on the same socket, and the next instance
# is restarted only once this one has stayed up for SETTLE_SECONDS (default 2). Meanwhile the other
# instances keep accepting from the socket, which systemd holds open, so no connection is refused; with
# a single instance, connections wait in the socket's backlog for the new process. If a new process does
# not stay up, the rollout stops with the remaining instances still on the old binary.
#
# Without NEW_BINARY it only restarts (e.g. after editing /etc/atelier/atelier.env). A cron function
# (name ending in -cron) is only installed: its next timer run uses the new binary.
set -euo pipefail

BIN_DIR=${ATELIER_BIN_DIR:-/usr/lib/atelier/bin}
SETTLE_SECONDS=${SETTLE_SECONDS:-2}

die() { printf 'redeploy: %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || { sed -n '2,17p' "$0"; exit 64; }
name=$1
new=${2:-}
[[ $name =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "not a function name: $name"

if [ -n "$new" ]; then
  [ -f "$new" ] && [ -x "$new" ] || die "$new is not an executable file"
  staged=$BIN_DIR/.$name.new
  install -m 0755 "$new" "$staged"
  kept=""
  if [ -e "$BIN_DIR/$name" ]; then
    cp -p "$BIN_DIR/$name" "$BIN_DIR/$name.previous"
    kept=" (the old one is $BIN_DIR/$name.previous)"
  fi
  mv -f "$staged" "$BIN_DIR/$name"
  echo "installed $BIN_DIR/$name$kept"
fi

case $name in *-cron) echo "atelier-$name.timer runs the new binary next time"; exit 0 ;; esac

# The function's instances that are running or starting, in instance order.
mapfile -t units < <(systemctl list-units --plain --no-legend --type=service --state=active,activating,reloading \
  "atelier-$name@*.service" | awk '{print $1}' | sort -t@ -k2 -V)
if [ ${#units[@]} -eq 0 ]; then
  # Scaled to zero (or never called): the next connection starts @1 on the new binary.
  echo "atelier-$name: no instance running; the next connection starts one on the new binary"
  exit 0
fi

for unit in "${units[@]}"; do
  systemctl restart "$unit"
  pid=$(systemctl show -p MainPID --value "$unit")
  sleep "$SETTLE_SECONDS"
  # Up means: still active, and still the same process (Restart=always would have replaced one that died).
  if [ "$(systemctl show -p ActiveState --value "$unit")" != active ] || [ "$pid" = 0 ] \
     || [ "$(systemctl show -p MainPID --value "$unit")" != "$pid" ]; then
    die "$unit did not stay up after the restart (journalctl -u $unit); the instances after it were not restarted"
  fi
  echo "restarted $unit (pid $pid)"
done
echo "atelier-$name: ${#units[@]} instances on the new binary"
