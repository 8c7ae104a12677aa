"""The metrics catalogue, read back through a fresh registry per test."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from consumer.metrics import KafkaStatsCollector, Metrics

IDS = {"worker": "w0", "gpu": "3"}
TOPIC = "evalstream.requests"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, "w0", "3")


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {**IDS, **labels})


# ----- counters --------------------------------------------------------------------------


def test_consumed_counts_messages_by_lane(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.consumed["bulk"].inc()
    metrics.consumed["bulk"].inc(4)
    metrics.consumed["interactive"].inc()

    assert value(registry, "evalstream_consumed_total", lane="bulk") == 5
    assert value(registry, "evalstream_consumed_total", lane="interactive") == 1


def test_results_are_counted_by_status_model_and_variant(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.result("ok", "gemma", None)
    metrics.result("ok", "gemma", None)
    metrics.result("error", "gemma", "b")

    completed = "evalstream_completed_total"
    assert value(registry, completed, status="ok", model="gemma", variant="") == 2
    assert value(registry, completed, status="error", model="gemma", variant="b") == 1
    assert value(registry, completed, status="error", model="gemma", variant="") is None


def test_dead_letters_and_retries_are_counted_by_reason(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.dead_letter("invalid_json")
    metrics.dead_letter("invalid_json")
    metrics.dead_letter("too_large")
    metrics.retry("engine_unavailable")

    assert value(registry, "evalstream_dead_lettered_total", reason="invalid_json") == 2
    assert value(registry, "evalstream_dead_lettered_total", reason="too_large") == 1
    assert value(registry, "evalstream_retries_total", reason="engine_unavailable") == 1


def test_known_reasons_and_cache_outcomes_exist_from_the_start_and_count(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    # At 0 before the first occurrence: the dashboard's rates read 0, not an empty panel.
    invalid, lookups = "evalstream_invalid_outputs_total", "evalstream_cache_lookups_total"
    assert value(registry, invalid, reason="truncated") == 0
    assert value(registry, invalid, reason="invalid_output") == 0
    assert value(registry, lookups, outcome="hit") == 0
    assert value(registry, lookups, outcome="miss") == 0
    assert value(registry, "evalstream_expired_total") == 0

    metrics.invalid_output("truncated")
    metrics.cache_lookup("hit")
    metrics.cache_lookup("miss")
    metrics.cache_lookup("miss")
    metrics.expired.inc()

    assert value(registry, invalid, reason="truncated") == 1
    assert value(registry, lookups, outcome="hit") == 1
    assert value(registry, lookups, outcome="miss") == 2
    assert value(registry, "evalstream_expired_total") == 1


def test_rebalances_count_partitions_by_kind(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.rebalance("assigned", 4)
    metrics.rebalance("revoked", 2)
    metrics.rebalance("lost", 0)

    assert value(registry, "evalstream_rebalances_total", kind="assigned") == 4
    assert value(registry, "evalstream_rebalances_total", kind="revoked") == 2
    assert value(registry, "evalstream_rebalances_total", kind="lost") == 0


def test_tokens_are_counted_by_model(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.tokens("gemma", 1200, 180)
    metrics.tokens("gemma", 800, 20)
    metrics.tokens("qwen", 10, 1)

    assert value(registry, "evalstream_prompt_tokens_total", model="gemma") == 2000
    assert value(registry, "evalstream_completion_tokens_total", model="gemma") == 200
    assert value(registry, "evalstream_prompt_tokens_total", model="qwen") == 10


# ----- gauges ----------------------------------------------------------------------------

GAUGES = [
    ("in_flight", "evalstream_in_flight_requests"),
    ("window_limit", "evalstream_window_limit_requests"),
    ("paused_partitions", "evalstream_paused_partitions"),
    ("assigned_partitions", "evalstream_assigned_partitions"),
    ("engine_up", "evalstream_engine_up"),
    ("circuit_open", "evalstream_circuit_open"),
    ("engine_waiting", "evalstream_engine_waiting_requests"),
]


@pytest.mark.parametrize(("attribute", "name"), GAUGES)
def test_gauges_exist_from_the_start_and_follow_set(
    registry: CollectorRegistry, metrics: Metrics, attribute: str, name: str
) -> None:
    # Present at 0 before the first set: dashboards and alerts see the series at once.
    assert value(registry, name) == 0

    getattr(metrics, attribute).set(7)

    assert value(registry, name) == 7


@pytest.mark.parametrize("lane", ["bulk", "interactive"])
def test_buffered_exists_per_lane_from_the_start(
    registry: CollectorRegistry, metrics: Metrics, lane: str
) -> None:
    assert value(registry, "evalstream_buffered_requests", lane=lane) == 0

    metrics.buffered[lane].set(7)  # type: ignore[index]

    assert value(registry, "evalstream_buffered_requests", lane=lane) == 7


def test_build_info_is_a_constant_one(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.build_info("0.1.0", "openai", "gemma")

    labels = {"version": "0.1.0", "backend": "openai", "model": "gemma"}
    assert value(registry, "evalstream_build_info", **labels) == 1


# ----- histograms ------------------------------------------------------------------------

HISTOGRAMS = [
    ("queue_wait", "evalstream_queue_wait_seconds", 0.3, "0.5", "0.25"),
    ("engine_latency", "evalstream_engine_latency_seconds", 1.5, "2.0", "1.0"),
    ("batch_size", "evalstream_batch_size_requests", 12, "16.0", "8.0"),
]


@pytest.mark.parametrize(("attribute", "name", "observed", "above", "below"), HISTOGRAMS)
def test_histograms_bucket_their_observations(
    registry: CollectorRegistry,
    metrics: Metrics,
    attribute: str,
    name: str,
    observed: float,
    above: str,
    below: str,
) -> None:
    getattr(metrics, attribute).observe(observed)
    getattr(metrics, attribute).observe(observed)

    assert value(registry, f"{name}_count") == 2
    assert value(registry, f"{name}_sum") == pytest.approx(2 * observed)
    assert value(registry, f"{name}_bucket", le=above) == 2
    assert value(registry, f"{name}_bucket", le=below) == 0
    assert value(registry, f"{name}_bucket", le="+Inf") == 2


def test_end_to_end_buckets_reach_hours(registry: CollectorRegistry, metrics: Metrics) -> None:
    # A request published at the back of a large backlog waits for hours, not seconds.
    metrics.end_to_end["bulk"].observe(5000)

    name = "evalstream_end_to_end_latency_seconds_bucket"
    assert value(registry, name, le="3600.0", lane="bulk") == 0
    assert value(registry, name, le="7200.0", lane="bulk") == 1
    assert value(registry, name, le="7200.0", lane="interactive") == 0


# ----- the catalogue as a whole ----------------------------------------------------------


def test_every_sample_follows_the_naming_rules_and_carries_the_identity(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.result("ok", "m", None)
    metrics.dead_letter("x")
    metrics.retry("x")
    metrics.rebalance("assigned", 1)
    metrics.tokens("m", 1, 1)
    metrics.build_info("v", "openai", "m")
    metrics.kafka_stats.update(json.dumps(librdkafka_stats()))

    families = list(registry.collect())
    assert len(families) >= 20
    for family in families:
        assert family.name.startswith("evalstream_"), family.name
        for sample in family.samples:
            if family.type == "counter" and not sample.name.endswith("_created"):
                assert sample.name.endswith("_total"), sample.name
            assert sample.labels["worker"] == "w0", sample.name
            assert sample.labels["gpu"] == "3", sample.name


def test_two_workers_register_in_their_own_registries() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics(first, "w0").consumed["bulk"].inc()
    Metrics(second, "w1")

    bulk = {"gpu": "", "lane": "bulk"}
    assert first.get_sample_value("evalstream_consumed_total", {"worker": "w0", **bulk}) == 1
    assert second.get_sample_value("evalstream_consumed_total", {"worker": "w1", **bulk}) == 0


# ----- consumer lag from librdkafka statistics -------------------------------------------


def partition(pid: int, *, fetch_state: str, committed: int, hi: int, lag: int) -> dict[str, Any]:
    """One partition of librdkafka's statistics (consumer side), as 2.x emits it."""
    return {
        "partition": pid,
        "broker": 1 if pid >= 0 else -1,
        "leader": 1 if pid >= 0 else -1,
        "desired": pid >= 0,
        "unknown": False,
        "msgq_cnt": 0,
        "msgq_bytes": 0,
        "xmit_msgq_cnt": 0,
        "xmit_msgq_bytes": 0,
        "fetchq_cnt": 12,
        "fetchq_size": 30_412,
        "fetch_state": fetch_state,
        "query_offset": -1001,
        "next_offset": committed + 12,
        "app_offset": committed + 3,
        "stored_offset": committed + 3,
        "stored_leader_epoch": 0,
        "commited_offset": committed,
        "committed_offset": committed,
        "committed_leader_epoch": 0,
        "eof_offset": -1001,
        "lo_offset": 0,
        "hi_offset": hi,
        "ls_offset": hi,
        "consumer_lag": lag,
        "consumer_lag_stored": lag - 3 if lag >= 0 else lag,
        "leader_epoch": 0,
        "txmsgs": 0,
        "txbytes": 0,
        "rxmsgs": committed + 12,
        "rxbytes": 2534 * (committed + 12),
        "msgs": committed + 12,
        "rx_ver_drops": 0,
        "msgs_inflight": 0,
        "next_ack_seq": 0,
        "next_err_seq": 0,
        "acked_msgid": 0,
    }


def librdkafka_stats(*, assigned: tuple[int, ...] = (0, 1, 2)) -> dict[str, Any]:
    """A consumer's statistics document: partitions 0-2 assigned, 3 not, 2 without a commit."""
    partitions = {
        "0": partition(0, fetch_state="active", committed=1200, hi=1450, lag=250),
        "1": partition(1, fetch_state="active", committed=980, hi=980, lag=0),
        # Assigned but nothing committed yet: librdkafka reports -1001 and a lag of -1.
        "2": partition(2, fetch_state="offset-query", committed=-1001, hi=500, lag=-1),
        "3": partition(3, fetch_state="none", committed=-1001, hi=700, lag=-1),
        "-1": partition(-1, fetch_state="none", committed=-1001, hi=-1001, lag=-1),
    }
    for pid in ("0", "1", "2"):
        if int(pid) not in assigned:
            partitions[pid]["fetch_state"] = "stopped"
    return {
        "name": "w0#consumer-1",
        "client_id": "w0",
        "type": "consumer",
        "ts": 5_123_456_789,
        "time": 1_732_800_000,
        "age": 15_000_000,
        "replyq": 0,
        "msg_cnt": 0,
        "msg_size": 0,
        "msg_max": 100_000,
        "msg_size_max": 1_073_741_824,
        "simple_cnt": 0,
        "metadata_cache_cnt": 1,
        "brokers": {
            "127.0.0.1:9092/1": {
                "name": "127.0.0.1:9092/1",
                "nodeid": 1,
                "nodename": "127.0.0.1:9092",
                "source": "configured",
                "state": "UP",
                "stateage": 14_000_000,
                "outbuf_cnt": 0,
                "waitresp_cnt": 1,
                "tx": 420,
                "rx": 419,
                "rtt": {"min": 180, "max": 2500, "avg": 420, "p99": 2100, "cnt": 40},
                "toppars": {f"{TOPIC}-{p}": {"topic": TOPIC, "partition": p} for p in range(4)},
            }
        },
        "topics": {
            TOPIC: {
                "topic": TOPIC,
                "age": 14_500,
                "metadata_age": 9_000,
                "batchsize": {"min": 0, "max": 0, "avg": 0, "cnt": 0},
                "batchcnt": {"min": 0, "max": 0, "avg": 0, "cnt": 0},
                "partitions": partitions,
            }
        },
        "cgrp": {
            "state": "up",
            "stateage": 12_000,
            "join_state": "steady",
            "rebalance_age": 11_800,
            "rebalance_cnt": 1,
            "rebalance_reason": "group is rebalancing",
            "assignment_size": len(assigned),
        },
        "tx": 420,
        "tx_bytes": 51_200,
        "rx": 419,
        "rx_bytes": 7_340_032,
        "txmsgs": 0,
        "txmsg_bytes": 0,
        "rxmsgs": 2204,
        "rxmsg_bytes": 5_585_000,
    }


def lag(registry: CollectorRegistry, pid: int) -> float | None:
    return value(registry, "evalstream_consumer_lag_messages", topic=TOPIC, partition=str(pid))


def committed(registry: CollectorRegistry, pid: int) -> float | None:
    return value(registry, "evalstream_committed_offset", topic=TOPIC, partition=str(pid))


def test_lag_and_committed_offsets_per_assigned_partition(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.kafka_stats.update(json.dumps(librdkafka_stats()))

    assert lag(registry, 0) == 250
    assert committed(registry, 0) == 1200
    assert lag(registry, 1) == 0
    assert committed(registry, 1) == 980


def test_unknown_figures_and_unassigned_partitions_are_left_out(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.kafka_stats.update(json.dumps(librdkafka_stats()))

    assert lag(registry, 2) is None  # -1: not known yet, not "no lag"
    assert committed(registry, 2) is None  # -1001: nothing committed
    assert lag(registry, 3) is None  # fetch_state "none": another member's partition
    assert lag(registry, -1) is None  # librdkafka's internal unassigned-partition queue


def test_the_latest_document_replaces_the_previous_one(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.kafka_stats.update(json.dumps(librdkafka_stats()))
    metrics.kafka_stats.update(json.dumps(librdkafka_stats(assigned=(1,))))

    assert lag(registry, 0) is None  # revoked: its series goes away
    assert lag(registry, 1) == 0


def test_no_statistics_yet_means_no_series() -> None:
    collector = KafkaStatsCollector(IDS)

    families = list(collector.collect())

    assert [f.name for f in families] == [
        "evalstream_consumer_lag_messages",
        "evalstream_committed_offset",
    ]
    assert all(f.samples == [] for f in families)


def test_a_producer_document_without_topics_clears_the_partitions(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.kafka_stats.update(json.dumps(librdkafka_stats()))
    metrics.kafka_stats.update(json.dumps({"name": "w0#consumer-1", "type": "consumer"}))

    assert lag(registry, 0) is None
