#!/bin/sh
# Creates the evalstream topics, or widens them: run once by docker compose's `kafka-init`
# service (image apache/kafka, which ships kafka-topics.sh), before any worker starts.
#
# Idempotent: an existing topic is kept; one with fewer partitions than asked for is
# widened (partitions can only grow). Widening remaps keys to partitions, which evalstream
# tolerates: nothing depends on per-key order, and results carry the request id.
#
# Environment (defaults in brackets):
#   BOOTSTRAP [kafka:19092]  PARTITIONS [8]  REPLICATION_FACTOR [1]
#   REQUESTS_TOPIC [evalstream.requests]  RESULTS_TOPIC [evalstream.results]
#   DLQ_TOPIC [evalstream.dlq]  DLQ_PARTITIONS [1]  KAFKA_BIN [/opt/kafka/bin]
#   INTERACTIVE_TOPIC [evalstream.requests.interactive]  INTERACTIVE_PARTITIONS [PARTITIONS]
set -eu

BOOTSTRAP=${BOOTSTRAP:-kafka:19092}
PARTITIONS=${PARTITIONS:-8}
REPLICATION_FACTOR=${REPLICATION_FACTOR:-1}
REQUESTS_TOPIC=${REQUESTS_TOPIC:-evalstream.requests}
RESULTS_TOPIC=${RESULTS_TOPIC:-evalstream.results}
DLQ_TOPIC=${DLQ_TOPIC:-evalstream.dlq}
# The interactive lane (workers consume it with --interactive-topic).
INTERACTIVE_TOPIC=${INTERACTIVE_TOPIC:-evalstream.requests.interactive}
INTERACTIVE_PARTITIONS=${INTERACTIVE_PARTITIONS:-$PARTITIONS}
# Dead letters are rare and read by people; one partition keeps them in arrival order.
DLQ_PARTITIONS=${DLQ_PARTITIONS:-1}
KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}

topics() {
    "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" "$@"
}

partition_count() {
    topics --describe --topic "$1" | sed -n 's/.*PartitionCount: *\([0-9][0-9]*\).*/\1/p' | head -n 1
}

ensure_topic() {
    topic=$1
    wanted=$2
    topics --create --if-not-exists --topic "$topic" \
        --partitions "$wanted" --replication-factor "$REPLICATION_FACTOR"
    current=$(partition_count "$topic")
    if [ -z "$current" ]; then
        echo "cannot read the partition count of $topic" >&2
        exit 1
    fi
    if [ "$current" -lt "$wanted" ]; then
        echo "widening $topic from $current to $wanted partitions"
        topics --alter --topic "$topic" --partitions "$wanted"
        current=$wanted
    fi
    echo "topic $topic: $current partitions"
}

ensure_topic "$REQUESTS_TOPIC" "$PARTITIONS"
ensure_topic "$RESULTS_TOPIC" "$PARTITIONS"
ensure_topic "$DLQ_TOPIC" "$DLQ_PARTITIONS"
ensure_topic "$INTERACTIVE_TOPIC" "$INTERACTIVE_PARTITIONS"
