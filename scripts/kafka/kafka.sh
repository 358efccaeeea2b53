#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) for dev and CI,
# without Docker: jars come from Maven Central via scripts/kafka/pom.xml.
#
# Usage: scripts/kafka/kafka.sh fetch|start|stop|status|reset|cluster-ids|consume
#   fetch   resolve the broker jars into .cache/kafka/libs (no-op when present)
#   start   fetch if needed, format storage once, start in the background and
#           wait until the broker is ready (exit 0 also if the port is taken)
#   stop    SIGTERM, wait up to 30 s, then SIGKILL; remove the pid file
#   status  exit 0 if our broker is running and its port accepts connections
#   reset   stop, then delete this port's data dir (next start is a fresh cluster)
#   cluster-ids [N]  print N (default 1) new cluster ids, one a line, as start formats with
#           (never one starting with '-', which the storage tool would take for an option)
#   consume TOPIC [--from-beginning] [--max-messages N] [--timeout-ms MS] [--group G] [...]
#           Kafka's console consumer (org.apache.kafka.tools.consumer.ConsoleConsumer)
#           on TOPIC, printing each record on one line as
#             Partition:P<TAB>Offset:O<TAB>headers<TAB>key<TAB>value
#           (headers as k:v,k:v; NO_HEADERS when none); Ctrl-C to stop. Further
#           options go to the consumer as they are (--help lists them). Its jars
#           (org.apache.kafka:kafka-tools, the broker's version, via
#           scripts/kafka/tools-pom.xml) are fetched into .cache/kafka/tools on
#           first use, apart from the broker's. Brokers: KAFKA_BROKERS, else
#           127.0.0.1:KAFKA_PORT. Needs Java and Maven, not a broker of its own.
#           Without --group it commits no offsets (the console consumer's own rule).
#           It never creates TOPIC (allow.auto.create.topics=false): a name
#           that does not exist prints nothing.
#
# Environment (all optional):
#   KAFKA_PORT=9092               PLAINTEXT listener on 127.0.0.1
#   KAFKA_CONTROLLER_PORT         CONTROLLER listener (default KAFKA_PORT+1, i.e. 9093)
#   KAFKA_PARTITIONS=3            num.partitions for auto-created topics
#   KAFKA_VERSION=4.1.1           org.apache.kafka:kafka_2.13 version to fetch
#   KAFKA_HEAP_OPTS="-Xms256m -Xmx512m"   KAFKA_JVM_OPTS=""  (extra JVM flags)
#   KAFKA_START_TIMEOUT=90        seconds to wait for readiness
#   KAFKA_MAVEN_REPO              Maven local repo (default: Maven's own, ~/.m2/repository)
#   KAFKA_CACHE_DIR               default <repo>/.cache/kafka
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
PARTITIONS="${KAFKA_PARTITIONS:-3}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"

CACHE="${KAFKA_CACHE_DIR:-$REPO_ROOT/.cache/kafka}"
LIBS="$CACHE/libs"
STAMP="$LIBS/.fetched"
DATA="$CACHE/data-$PORT"
CONF="$CACHE/server-$PORT.properties"
LOG4J_CONF="$CACHE/log4j2.properties"
LOG="$CACHE/kafka-$PORT.log"
PIDFILE="$CACHE/kafka-$PORT.pid"
TOOLS="$CACHE/tools"
TOOLS_STAMP="$TOOLS/.fetched"
TOOLS_LOG4J_CONF="$CACHE/tools-log4j2.properties"

log() { printf '[kafka.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH ($2)"; }

# 0 if something accepts TCP connections on 127.0.0.1:$1
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# pid of our broker for this port, if alive (empty otherwise)
our_pid() {
  [[ -f "$PIDFILE" ]] || return 0
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'; then
    echo "$pid"
  fi
}

# fetch_jars POM DEST JAR: resolve POM's runtime dependencies at $KAFKA_VERSION
# into DEST (replaced whole, stamped with the version); JAR must be among them.
fetch_jars() {
  local pom="$1" dest="$2" jar="$3"
  local tmp="$dest.tmp.$$"
  rm -rf "$tmp"
  local mvn_args=(-B -q -f "$pom" "-Dkafka.version=$KAFKA_VERSION"
    dependency:copy-dependencies -DincludeScope=runtime "-DoutputDirectory=$tmp")
  [[ -n "${KAFKA_MAVEN_REPO:-}" ]] && mvn_args=("-Dmaven.repo.local=$KAFKA_MAVEN_REPO" "${mvn_args[@]}")
  if ! mvn "${mvn_args[@]}" >"$CACHE/fetch.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$CACHE/fetch.log" | tail -n 40 >&2
    rm -rf "$tmp"; die "maven fetch failed (full output: $CACHE/fetch.log)"
  fi
  ls "$tmp/$jar" >/dev/null 2>&1 || { rm -rf "$tmp"; die "$jar missing after fetch"; }
  echo "$KAFKA_VERSION" >"$tmp/.fetched"
  rm -rf "$dest"
  mv "$tmp" "$dest"
}

cmd_fetch() {
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$KAFKA_VERSION" ]]; then
    return 0
  fi
  need java "install a JDK >= 17"
  need mvn "install Maven >= 3.6"
  mkdir -p "$CACHE"
  # Serialize concurrent fetches (two ports started in parallel).
  exec 8>"$CACHE/.fetch.lock"
  command -v flock >/dev/null 2>&1 && flock 8
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$KAFKA_VERSION" ]]; then
    exec 8>&-; return 0
  fi
  log "fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION + runtime deps into $LIBS"
  fetch_jars "$SCRIPT_DIR/pom.xml" "$LIBS" "kafka_2.13-$KAFKA_VERSION.jar"
  exec 8>&-
  log "fetched $(ls "$LIBS" | wc -l) jars"
}

# The command-line tools, in their own folder: fetching them never replaces
# the jars a running broker loads its classes from.
fetch_tools() {
  [[ -f "$TOOLS_STAMP" && "$(cat "$TOOLS_STAMP")" == "$KAFKA_VERSION" ]] && return 0
  need java "install a JDK >= 17"
  need mvn "install Maven >= 3.6"
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.fetch.lock"
  command -v flock >/dev/null 2>&1 && flock 8
  if [[ -f "$TOOLS_STAMP" && "$(cat "$TOOLS_STAMP")" == "$KAFKA_VERSION" ]]; then
    exec 8>&-; return 0
  fi
  log "fetching org.apache.kafka:kafka-tools:$KAFKA_VERSION + runtime deps into $TOOLS"
  fetch_jars "$SCRIPT_DIR/tools-pom.xml" "$TOOLS" "kafka-tools-$KAFKA_VERSION.jar"
  exec 8>&-
  log "fetched $(ls "$TOOLS" | wc -l) jars"
}

cmd_consume() {
  local topic="${1:-}"
  if [[ -z "$topic" || "$topic" == -* ]]; then
    echo "usage: $0 consume TOPIC [--from-beginning] [--max-messages N] [--timeout-ms MS] [...]" >&2; exit 2
  fi
  shift
  fetch_tools
  cat >"$TOOLS_LOG4J_CONF" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
  # shellcheck disable=SC2086  # KAFKA_JVM_OPTS is intentionally word-split
  exec java -Xms32m -Xmx256m -Djava.awt.headless=true "-Dlog4j2.configurationFile=$TOOLS_LOG4J_CONF" \
    ${KAFKA_JVM_OPTS:-} -cp "$TOOLS/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
    --bootstrap-server "${KAFKA_BROKERS:-127.0.0.1:$PORT}" --topic "$topic" \
    --property print.partition=true --property print.offset=true \
    --property print.headers=true --property print.key=true --property print.value=true \
    --consumer-property allow.auto.create.topics=false \
    "$@"
}

write_configs() {
  mkdir -p "$DATA"
  cat >"$CONF" <<EOF
# Generated by scripts/kafka/kafka.sh - edits are overwritten on start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
num.partitions=$PARTITIONS
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=${KAFKA_OFFSETS_PARTITIONS:-10}
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=${KAFKA_OFFSETS_PARTITIONS:-10}
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
  cat >"$LOG4J_CONF" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.zk.name = org.apache.kafka.server.config
logger.zk.level = WARN
EOF
}

java_opts() {
  # shellcheck disable=SC2206  # HEAP_OPTS / KAFKA_JVM_OPTS are intentionally word-split
  JAVA_OPTS=($HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$LOG4J_CONF" ${KAFKA_JVM_OPTS:-} -cp "$LIBS/*")
}

# A new cluster id as Kafka's Uuid.randomUuid makes one: URL-safe base64 (no
# padding) of 16 random bytes, drawn again while it starts with '-' (the
# storage tool would read such an id as an option, and refuse to format).
new_cluster_id() {
  local cid
  while :; do
    cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$cid" != -* ]] && break
  done
  printf '%s\n' "$cid"
}

cmd_cluster_ids() {
  local n="${1:-1}" i
  for ((i = 0; i < n; i++)); do new_cluster_id; done
}

format_storage() {
  [[ -f "$DATA/meta.properties" ]] && return 0
  local cid
  cid="$(new_cluster_id)"
  log "formatting $DATA (cluster id $cid)"
  java_opts
  java "${JAVA_OPTS[@]}" kafka.tools.StorageTool format -t "$cid" -c "$CONF" --ignore-formatted >>"$LOG" 2>&1 \
    || { tail -n 40 "$LOG" >&2; die "storage format failed"; }
}

cmd_start() {
  local pid
  pid="$(our_pid)"
  if [[ -n "$pid" ]] && port_open "$PORT"; then
    log "already running (pid $pid) on 127.0.0.1:$PORT"; return 0
  fi
  if [[ -z "$pid" ]] && port_open "$PORT"; then
    log "something already listens on 127.0.0.1:$PORT (not started by this script); using it"
    return 0
  fi
  if [[ -z "$pid" ]]; then
    port_open "$CPORT" && die "controller port $CPORT is in use (set KAFKA_CONTROLLER_PORT)"
    cmd_fetch
    need java "install a JDK >= 17"
    mkdir -p "$CACHE"
    [[ -f "$LOG" ]] && mv -f "$LOG" "$LOG.1"
    write_configs
    format_storage
    log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$PORT (controller $CPORT), log $LOG"
    # New session so a Ctrl-C / job-control signal of the caller does not hit the
    # broker; the subshell execs setsid which execs java, so $! is java's pid.
    local setsid=()
    command -v setsid >/dev/null 2>&1 && setsid=(setsid)
    (cd "$CACHE" && exec "${setsid[@]}" "$SCRIPT_DIR/kafka.sh" __run) </dev/null >>"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
  else
    log "process $pid exists but port $PORT is not open yet; waiting"
  fi

  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      log "broker exited during startup; last log lines:"; tail -n 60 "$LOG" >&2
      exit 1
    fi
    if grep -q 'Kafka Server started' "$LOG" 2>/dev/null && port_open "$PORT"; then
      log "ready after $((SECONDS - deadline + START_TIMEOUT))s (pid $pid)"
      return 0
    fi
    sleep 0.5
  done
  log "not ready after ${START_TIMEOUT}s; last log lines:"; tail -n 60 "$LOG" >&2
  stop_pid "$pid"
  exit 1
}

stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid still alive after 30s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PIDFILE"
}

cmd_stop() {
  local pid
  pid="$(our_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$PIDFILE"
    if port_open "$PORT"; then
      log "not started by this script, but something listens on $PORT; leaving it alone"
    else
      log "not running"
    fi
    return 0
  fi
  log "stopping pid $pid"
  stop_pid "$pid"
  log "stopped"
}

cmd_status() {
  local pid
  pid="$(our_pid)"
  if [[ -n "$pid" ]] && port_open "$PORT"; then
    echo "running (pid $pid) on 127.0.0.1:$PORT"; return 0
  fi
  if [[ -n "$pid" ]]; then
    echo "process $pid alive but 127.0.0.1:$PORT not accepting connections"; return 1
  fi
  if port_open "$PORT"; then
    echo "not started by this script, but 127.0.0.1:$PORT accepts connections"; return 0
  fi
  echo "not running"; return 1
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA" "$CONF" "$LOG" "$LOG.1"
  log "removed $DATA"
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  consume) shift; cmd_consume "$@" ;;
  cluster-ids) shift; cmd_cluster_ids "$@" ;;
  __run) java_opts; exec java "${JAVA_OPTS[@]}" kafka.Kafka "$CONF" ;;  # internal: used by start
  *) echo "usage: $0 fetch|start|stop|status|reset|cluster-ids [N]|consume TOPIC [options]" >&2; exit 2 ;;
esac
