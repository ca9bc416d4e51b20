#!/bin/sh
# outpost's launcher, the unit's ExecStart (installed by install.sh as <prefix>/launch, outside every release
# slot, and never replaced by an OTA update): runs <prefix>/releases/current. While an update is pending
# (switched to but not committed, <dataDir>/ota/pending), it decides on rollback itself, so the decision never
# depends on the new release's code being sane:
#   - the pending release has started BOOTS_MAX times without committing (a crash loop): roll back at start;
#   - it has not committed within its healthSecs (READY, store open, cloud connected; see firmware/ota/
#     health.ts): roll back and stop it;
#   - systemd's watchdog killed it (WatchdogSignal=SIGABRT reaches this shell, the main process): roll back.
# A rollback points releases/current back at releases/previous (a synced link renamed over the old one),
# records {state: rolled-back, reason} in <dataDir>/ota/result for the reporter, and exits non-zero, so that
# Restart=always starts the previous release. With nothing pending it execs node: no process stays behind.
# The state files are described in firmware/ota/pending.ts.
set -u
prefix=$(cd "$(dirname "$0")" && pwd)
releases=$prefix/releases
state=${OUTPOST_DATA_DIR:-/var/lib/outpost}/ota
# Starts of an uncommitted release before it is rolled back: one failed start may be a power cut or a full
# disk, three in a row are the release. Kept under systemd's StartLimitBurst (5), which would stop the unit.
BOOTS_MAX=3
# The new release's own graceful stop (SIGTERM) takes at most 15 s (main.ts); then it is killed.
STOP_WAIT_SECS=20
# The V8 heap sizing of every launcher (scripts/node-flags.json).
NODE_FLAGS="--max-semi-space-size=2 --heap-growing-percent=20"

say() { echo "outpost launch: $*" >&2; }

# Monotonic seconds since boot: a Pi without an RTC steps its wall clock by years when NTP syncs.
uptime_secs() { cut -d. -f1 /proc/uptime; }

# sync(1) with a file argument fsyncs that file or directory (coreutils 8.24+).
publish() { # <file> <text>: written whole, synced, renamed into place, directory synced
  printf '%s\n' "$2" > "$1.tmp" && sync "$1.tmp" && mv -f "$1.tmp" "$1" && sync "$(dirname "$1")"
}

point_current() { # <version>: the same switch as firmware/ota/slots.ts pointSlot
  rm -f "$releases/current.tmp"
  ln -s "$1" "$releases/current.tmp"
  sync "$releases"
  mv -T -f "$releases/current.tmp" "$releases/current"
  sync "$releases"
}

# Reasons are built here from fixed words and numbers only, so they need no JSON escaping.
record() { # <state> <version> <from> <reason>
  at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  publish "$state/result" "{\"state\":\"$1\",\"version\":\"$2\",\"from\":\"$3\",\"reason\":\"$4\",\"at\":\"$at\"}"
}

result_is() { # <state> <version>
  grep -q "^{\"state\":\"$1\",\"version\":\"$2\"" "$state/result" 2>/dev/null
}

# Only the record of $version: a supervisor that outlived its commit must not take the record of the update
# applied while it ran (outpost update, then the restart that ends it) with it.
forget_pending() {
  [ "$(sed -n 's/^version=//p' "$state/pending" 2>/dev/null)" = "$version" ] || return 0
  rm -f "$state/pending" "$state/boots" "$state/last-exit"
  sync "$state"
}

# The result is recorded before the switch: a cut between the two leaves the pending record, and the next
# start rolls back again instead of losing the reason.
rollback() { # <reason>
  previous=$(readlink "$releases/previous" || true)
  if [ -z "$previous" ] || [ ! -x "$releases/$previous/bin/node" ]; then
    say "$version failed ($1) but there is no previous release to return to; keeping it"
    record rolled-back "$version" "" "$1; no previous release, kept"
    forget_pending
    return
  fi
  record rolled-back "$version" "$previous" "$1"
  point_current "$previous"
  forget_pending
  say "rolled back $version to $previous: $1"
}

# Runs the pending release as a child, forwarding the unit's signals, until it exits or its time is up.
supervise() {
  "$releases/current/bin/node" $NODE_FLAGS "$releases/current/outpost.js" "$@" &
  child=$!
  verdict=
  trap 'kill -TERM "$child" 2>/dev/null' TERM INT
  trap 'kill -USR2 "$child" 2>/dev/null' USR2
  trap 'verdict="watchdog: systemd watchdog timeout"; kill -KILL "$child" 2>/dev/null' ABRT
  deadline=$(($(uptime_secs) + health))
  while kill -0 "$child" 2>/dev/null && [ -z "$verdict" ] && ! result_is committed "$version"; do
    if [ "$(uptime_secs)" -ge "$deadline" ]; then
      verdict="health-timeout: not READY with the store open and the cloud connected within ${health} s"
      kill -TERM "$child" 2>/dev/null
      (sleep "$STOP_WAIT_SECS" && kill -KILL "$child" 2>/dev/null) &
      break
    fi
    # A wait on a background sleep, not sleep itself: a trapped signal interrupts wait at once.
    sleep 1 &
    wait $! 2>/dev/null
  done
  code=0
  while :; do
    wait "$child"
    code=$?
    kill -0 "$child" 2>/dev/null || break
  done
  if result_is committed "$version"; then
    forget_pending
  elif [ -n "$verdict" ]; then
    rollback "$verdict"
    exit 1
  else
    echo "$code" > "$state/last-exit"
  fi
  exit "$code"
}

if [ -f "$state/pending" ]; then
  version=$(sed -n 's/^version=//p' "$state/pending")
  health=$(sed -n 's/^healthSecs=//p' "$state/pending")
  # A record the updater wrote cannot lack it; a hand-edited one gets the option's default.
  case "$health" in '' | *[!0-9]*) health=120 ;; esac
  current=$(readlink "$releases/current" || true)
  if result_is committed "$version"; then
    # The commit was cut after its result was written: it is committed.
    forget_pending
  elif [ "$current" != "$version" ]; then
    # The updater was cut before its switch (or a rollback after its own): current is whole, and is kept.
    result_is rolled-back "$version" ||
      record rolled-back "$version" "$current" "interrupted: the switch to $version did not complete"
    forget_pending
  else
    boots=$(($(cat "$state/boots" 2>/dev/null || echo 0) + 1))
    if [ "$boots" -gt "$BOOTS_MAX" ]; then
      last=$(cat "$state/last-exit" 2>/dev/null || echo unknown)
      rollback "crash-loop: started $BOOTS_MAX times without committing, last exit status $last"
    else
      publish "$state/boots" "$boots"
      say "starting pending release $version (start $boots of $BOOTS_MAX, ${health} s to pass its health check)"
      supervise "$@"
    fi
  fi
fi
# shellcheck disable=SC2086
exec "$releases/current/bin/node" $NODE_FLAGS "$releases/current/outpost.js" "$@"
