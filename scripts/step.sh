#!/usr/bin/env bash
# One set-up step of the Makefile: say what is happening, show a spinner while it runs (on a
# terminal only), and show the command's own output only if it fails.
#   scripts/step.sh "installing dependencies" pip install ...
set -uo pipefail

message=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if [ -t 2 ] && [ "${TERM:-dumb}" != dumb ]; then
  "$@" >"$log" 2>&1 &
  pid=$!
  trap 'kill "$pid" 2>/dev/null; rm -f "$log"; printf "\r\033[K" >&2; exit 130' INT TERM
  frames='⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏'
  started=$SECONDS
  i=0
  while kill -0 "$pid" 2>/dev/null; do
    printf '\r%s %s (%ds)' "${frames:i++%10:1}" "$message" $((SECONDS - started)) >&2
    sleep 0.1
  done
  wait "$pid"
  status=$?
  printf '\r\033[K' >&2
else
  "$@" >"$log" 2>&1
  status=$?
fi

if [ "$status" -ne 0 ]; then
  cat "$log" >&2
  echo "hereabouts: failed: $message (exit $status)" >&2
  exit "$status"
fi
echo "hereabouts: $message: done"
