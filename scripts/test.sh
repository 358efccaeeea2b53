#!/usr/bin/env bash
# `npm test`: starts what the tests need (a Kafka broker when none is reachable,
# Chromium for the browser test when missing), then runs every *.test.ts with
# node's test runner. Extra arguments are passed to it (e.g. a file list).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

started_kafka=0
if [ -z "${KAFKA_BROKERS:-}" ]; then
  if ! bash scripts/kafka/kafka.sh status >/dev/null 2>&1; then
    echo "test: starting a Kafka broker (scripts/kafka/kafka.sh start)"
    bash scripts/kafka/kafka.sh start
    started_kafka=1
  fi
  export KAFKA_BROKERS=127.0.0.1:${KAFKA_PORT:-9092}
fi
cleanup() {
  if [ "$started_kafka" = 1 ] && [ "${ATS_KEEP_KAFKA:-0}" != 1 ]; then bash scripts/kafka/kafka.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

bash scripts/ensure-chromium.sh

export MYSQL_URL=${MYSQL_URL:-mysql://root@127.0.0.1:3306}
# --conditions=ats-source: a test may import an example module, which imports the package by
# name (`ai-task-scheduler/handlers`): the source, as `npm start` resolves it, not a build.
# --test-force-exit: a file whose tests have all ended exits even if a client library left a
# timer behind (a kafkajs reconnect to a broker the file stopped, now and then): its results are
# in, and waiting for the file timeout would only fail it after ten minutes.
# tests/helpers/blocking-stdout.ts: each process then writes its report whole before that exit
# (written to a full pipe, the rest was lost: tests missing, a failure without its name).
run() {
  node --conditions=ats-source --import tsx --import ./tests/helpers/blocking-stdout.ts --test --test-force-exit \
    --test-concurrency="$1" --test-timeout="${TEST_TIMEOUT_MS:-600000}" "${@:2}"
}
log=$(mktemp)
trap 'rm -f "$log"; cleanup' EXIT
status=0
if [ "$#" -gt 0 ]; then
  echo "test: $# test files"
  run "${TEST_CONCURRENCY:-2}" "$@" | tee "$log" || status=1
else
  # The tests that load the machine with many processes and measure recovery
  # times (the crash test, the fault-injection test) run after the others, one
  # at a time: beside each other or beside the property tests, a starved machine
  # makes their time bounds measure the load, not the scheduler.
  heavy=(./tests/integration/crash.test.ts ./tests/integration/faults.test.ts)
  mapfile -t files < <(find . -name '*.test.ts' -not -path './node_modules/*' -not -path './.cache/*' | sort | grep -vxF -f <(printf '%s\n' "${heavy[@]}"))
  echo "test: ${#files[@]} test files, then ${#heavy[@]} alone"
  run "${TEST_CONCURRENCY:-2}" "${files[@]}" | tee "$log" || status=1
  run 1 "${heavy[@]}" | tee -a "$log" || status=1
fi
sum() { grep -E "^# $1 [0-9]+$" "$log" | awk '{n += $3} END {print n + 0}'; }
# The failures again, last: a long run's output is often read from its end. Each
# `not ok` line with its YAML block (the error, where it was thrown), cut at 40 lines,
# the section at 400. awk cuts it itself: under pipefail, a `| head` would end the
# script with the writer's SIGPIPE (141) before the counts below.
failures() {
  awk '
    function say(line) {
      if (out < 400) print line
      else if (out == 400) print "(the failures section is cut at 400 lines; the whole report is above it)"
      out++
    }
    /^ *not ok / { show = 1; n = 0; say($0); next }
    show && /^ *\.\.\.$/ { show = 0; say($0); next }
    show { n++; if (n <= 40) say($0); else if (n == 41) say("      (cut)") }
  ' "$log"
}
# A test cancelled (its suite's timeout ran out, its file ended early) fails the run as well, though the
# runner counts it apart from the failed ones.
if [ "$(sum fail)" != 0 ] || [ "$(sum cancelled)" != 0 ]; then
  echo "test: the failures"
  failures
fi
echo "test: $(sum pass) passed, $(sum fail) failed, $(sum cancelled) cancelled"
exit "$status"
