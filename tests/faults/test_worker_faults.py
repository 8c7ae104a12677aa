"""Worker faults: kill -9 at random moments, and a storm of workers joining and leaving."""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.faults.outcomes import (
    PARTITIONS,
    TIME_SCALE,
    WORKER_ARGS,
    Accounting,
    Outcome,
    OutcomeWatcher,
    assert_all_committed,
    publish,
    report,
)
from tests.integration.pipeline import Pipeline, Worker, committed

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

SEED = 20261128
# The group notices a dead member after its session timeout; 10 s instead of librdkafka's 45 s
# keeps five crashes within minutes (the recovery time scales with it).
SESSION = {"EVALSTREAM_KAFKA__CLIENT": json.dumps({"session.timeout.ms": "10000"})}


@pytest.mark.timeout(600)
def test_worker_kill_9_five_times_loses_nothing(
    engine_factory: Callable[..., str], fault_pipeline: Callable[..., Pipeline]
) -> None:
    total, kills = 3000, 5
    pipeline = fault_pipeline(engine_factory("vllm", "--time-scale", TIME_SCALE), PARTITIONS)
    topics = pipeline.topics
    publish(pipeline, total)
    # One kill at a random point of each fifth of the run, so every kill hits a running worker.
    rng = random.Random(SEED)
    span = (total - 600) // kills
    thresholds = [300 + k * span + rng.randrange(span) for k in range(kills)]
    watcher = OutcomeWatcher(pipeline.bootstrap, topics.results, topics.dlq)
    killed_at: list[float] = []
    windows: list[tuple[str, dict[int, int]]] = []  # (killed worker, its committed positions)
    try:
        worker = pipeline.worker(*WORKER_ARGS, env=SESSION, name="w0")
        for k, threshold in enumerate(thresholds):
            assert watcher.wait_distinct(threshold, 180), f"stalled before {threshold}"
            # Read before the kill: a commit in between only shrinks the real window.
            window = committed(pipeline.bootstrap, topics.group, topics.requests, PARTITIONS)
            windows.append((f"w{k}", window))
            worker.kill()  # SIGKILL: no drain, no commit, no leave
            killed_at.append(time.time())
            worker = pipeline.worker(*WORKER_ARGS, env=SESSION, name=f"w{k + 1}")
        assert watcher.wait_distinct(total, 240), f"{watcher.distinct()} of {total} finished"
        assert_all_committed(pipeline, PARTITIONS)
    finally:
        watcher.close()
    accounting = Accounting.of(watcher.outcomes(), total)
    assert accounting.dead_letters == {}
    redone = assert_redone_only_past_the_floor(accounting.outcomes, dict(windows))
    # The README's bound, exact: a kill costs at most what the killed worker had published at
    # or past the committed offsets (its work since its last commit, and what it finished out
    # of order behind the lowest unfinished offset), counted from the broker, not from rates.
    exposed = {
        killed: sum(
            o.worker == killed and o.offset >= floor[o.partition] for o in accounting.outcomes
        )
        for killed, floor in windows
    }
    for killed, count in redone.items():
        assert count <= exposed[killed], f"{killed}: {count} redone, {exposed[killed]} exposed"
    assert accounting.duplicates == sum(redone.values())
    recoveries = [accounting.recovery_s(t) for t in killed_at]
    report(
        "worker_kill_9_x5",
        total,
        accounting.duplicates,
        max(recoveries),
        seed=SEED,
        thresholds=thresholds,
        recoveries_s=recoveries,
        exposed=[exposed[killed] for killed, _ in windows],
        redone=[redone.get(killed, 0) for killed, _ in windows],
    )


def assert_redone_only_past_the_floor(
    outcomes: list[Outcome], floors: dict[str, dict[int, int]]
) -> Counter[str]:
    """Checks that every copy of a request but the last came from a killed worker's window.

    Workers ran one after another (``w0``, ``w1``, ...), so a request's copies are ordered by
    the number of the worker that made them. Every copy but the last must come from a worker
    that was killed, once per worker, at an offset at or past the group's committed offset read
    just before that kill: work below it was committed and must never be done again.

    Args:
        outcomes: every outcome message, duplicates kept.
        floors: killed worker id -> the committed offset per partition read before its kill.

    Returns:
        Killed worker id -> how many of its outcomes were done again after it.
    """
    by_source: dict[tuple[int, int], list[Outcome]] = {}
    for outcome in outcomes:
        by_source.setdefault((outcome.partition, outcome.offset), []).append(outcome)
    redone: Counter[str] = Counter()
    for (partition, offset), copies in by_source.items():
        workers = sorted((o.worker for o in copies), key=lambda worker: int(worker[1:]))
        where = f"[{partition}]@{offset} done by {workers}"
        assert len(set(workers)) == len(workers), f"{where}: twice by one worker"
        for worker in workers[:-1]:
            assert worker in floors, f"{where}: {worker} was not killed"
            floor = floors[worker][partition]
            assert offset >= floor, f"{where}: below {worker}'s committed offset {floor}"
            redone[worker] += 1
    return redone


# join: one more worker; leave: SIGTERM to the oldest extra one, without waiting for it to exit.
# One round adds and removes five workers; rounds repeat until the work is done, so partitions
# change hands while their last requests complete and their last offsets are committed.
STORM = ("join", "join", "leave", "join", "leave", "join", "leave", "leave", "join", "leave")
STORM_INTERVAL_S = 2.5
MAX_ROUNDS = 4
STORM_ARGS = ("--window-policy", "fixed", "--window", "8")


@pytest.mark.timeout(480)
def test_rebalance_storm_loses_nothing_and_repeats_nothing(
    engine_factory: Callable[..., str], fault_pipeline: Callable[..., Pipeline]
) -> None:
    total = 3000
    pipeline = fault_pipeline(engine_factory("vllm", "--time-scale", "10"), PARTITIONS)
    topics = pipeline.topics
    publish(pipeline, total)
    watcher = OutcomeWatcher(pipeline.bootstrap, topics.results, topics.dlq)
    extras: list[Worker] = []
    leaving: list[Worker] = []
    rounds = 0
    try:
        pipeline.worker(*STORM_ARGS, name="steady", env=SESSION)
        assert watcher.wait_distinct(300, 120)
        started = time.time()
        while watcher.distinct() < total and rounds < MAX_ROUNDS:
            rounds += 1
            for change in STORM:
                if change == "join":
                    extras.append(pipeline.worker(*STORM_ARGS, env=SESSION))
                else:
                    leaver = extras.pop(0)
                    leaver.signal(signal.SIGTERM)  # drains, commits, leaves while others join
                    leaving.append(leaver)
                time.sleep(STORM_INTERVAL_S)  # the storm's cadence: one change per period
        assert watcher.wait_distinct(total, 240), f"{watcher.distinct()} of {total} finished"
        assert_all_committed(pipeline, PARTITIONS)
        exit_codes = [w.wait(60) for w in leaving]
    finally:
        watcher.close()
    assert exit_codes == [0] * len(leaving), "a worker did not shut down cleanly"
    accounting = Accounting.of(watcher.outcomes(), total)
    assert accounting.dead_letters == {}
    # Every hand-over was graceful (revoke drains and commits first): nothing is done twice.
    assert accounting.duplicates == 0, sorted(
        source for source, copies in accounting.copies_by_source().items() if copies > 1
    )[:10]
    report(
        "rebalance_storm",
        total,
        accounting.duplicates,
        accounting.longest_stall_s(started),
        changes=rounds * len(STORM),
        interval_s=STORM_INTERVAL_S,
        workers=len(pipeline.workers),
    )
