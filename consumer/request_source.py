"""The requests topic: one consumer owned by one thread that never stops polling.

librdkafka's consumer is driven from a dedicated thread, so the group session and
``max.poll.interval.ms`` stay healthy however long the engine takes: when the worker has no
room, the thread pauses the lane's partitions and keeps polling. Messages and rebalance events
go to a `SourceListener`. How much it reads is the ledger's to say (`Credits`): each message is
handed over only with a hold the ledger grants; one beyond the room is not delivered and its
partition is rewound to it, so the worker never holds more than its bounds, whatever the
timing. Commits hop to this thread (`commit`): the consumer is only ever called from here.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumer.errors import SourceError
from consumer.lanes import LANES, Lane
from consumer.partitions import PartitionKey
from consumer.source_listener import Credits, SourceListener

log = logging.getLogger(__name__)

# Leaving the group: how long to serve the revoke of the last partitions, then to close.
_LEAVE_TIMEOUT_S = 10.0
_CLOSE_TIMEOUT_S = 10.0
# Upper bound of one consume() call; also bounds what arrives after a pause is asked.
_MAX_CONSUME = 500
_POLL_TIMEOUT_S = 0.1


class RequestSource:
    """Owns the consumer and its thread; each lane's partitions pause on their own.

    Args:
        config: librdkafka consumer configuration (group, bootstrap, security).
        topics: the topics to consume and the lane of each.
    """

    # Set by `start`: the thread and the rebalance callbacks only run after it.
    _listener: SourceListener

    def __init__(self, config: dict[str, Any], topics: dict[str, Lane]) -> None:
        self._consumer = Consumer(
            {
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "cooperative-sticky",
                **config,
                "on_commit": self._on_commit,
            }
        )
        self._topics = dict(topics)
        self._epochs: dict[tuple[str, int], int] = {}
        self._next_epoch = 1
        self._paused: set[Lane] = set()
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-source", daemon=True)
        self.last_poll_monotonic = 0.0
        self._commits_in_flight = 0  # asynchronous commits without a result yet
        self._leave_s = _LEAVE_TIMEOUT_S
        self._metadata: object = None

    @property
    def topics(self) -> dict[str, Lane]:
        """The consumed topics and the lane of each."""
        return dict(self._topics)

    def paused(self, lane: Lane) -> bool:
        """Whether the lane's partitions are paused for backpressure."""
        return lane in self._paused

    def paused_count(self) -> int:
        """How many owned partitions are paused for backpressure now."""
        paused = set(self._paused)  # a copy: the consumer thread changes the set
        return sum(1 for topic, _ in list(self._epochs) if self._topics.get(topic) in paused)

    def group_metadata(self) -> object:
        """The group's metadata for transactional offset commits, as of the last rebalance.

        Read by other threads from a copy the rebalance callbacks refresh (every rebalance
        calls one, with an empty list when this member's partitions do not change): a call
        into the consumer from another thread waits for the consumer's lock, which the
        polling loop takes back at once and may hold for good (no transaction would commit).
        """
        return self._metadata

    def start(self, listener: SourceListener, credits: Credits) -> None:
        """Subscribes and starts the polling thread, which calls ``listener``."""
        self._listener = listener
        self._credits = credits
        self._consumer.subscribe(
            list(self._topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._thread.start()

    def stop(self, timeout: float = _LEAVE_TIMEOUT_S + _CLOSE_TIMEOUT_S) -> None:
        """Serves the commits asked for, leaves the group and closes, within ``timeout``.

        A consumer that cannot close must not keep the process from exiting (its offsets
        are committed by then, or stay uncommitted and are read again).
        """
        self._leave_s = max(1.0, timeout - _CLOSE_TIMEOUT_S)
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the consumer did not close in time; exiting without waiting for it")

    def commit(
        self, offsets: dict[PartitionKey, int], *, in_rebalance: bool = False
    ) -> concurrent.futures.Future[None]:
        """Commits ``offsets`` on the consumer's thread; offsets of a stale epoch are ignored.

        The commit port of `consumer.committer.Committer`. Outside a rebalance the commit is
        asynchronous (a synchronous one while a rebalance is pending waits for the rebalance,
        which waits for this thread to poll); in the revoke callback, synchronous, so the
        offsets are durable before the partitions go. The future is done once it was made.
        """
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def command() -> None:
            try:
                self._commit(offsets, asynchronous=not in_rebalance)
            finally:
                if done.set_running_or_notify_cancel():  # the caller may have given up
                    done.set_result(None)

        if offsets:
            self._commands.put(command)
        else:
            done.set_result(None)
        return done

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._drain_commands()
                self._apply_backpressure()
                self.last_poll_monotonic = time.monotonic()
                # While every lane is paused this still serves the group and returns nothing;
                # a message beyond the room is refused by the ledger and read again later.
                self._deliver(self._consumer.consume(self._wanted(), _POLL_TIMEOUT_S))
            self._drain_commands()
            self._leave_group()
            log.info("left the group")
        except SourceError as exc:
            # No leave, no commit: a fatal consumer cannot talk to the group any more.
            self._listener.on_fatal(exc)
        except Exception as exc:
            log.exception("request source thread failed")
            self._listener.on_fatal(SourceError(f"request source thread failed: {exc!r}"))
        finally:
            self._consumer.close()

    def _wanted(self) -> int:
        """How many messages one poll may return: the least room of the lanes reading.

        Any split of that many among the unpaused lanes fits each lane's room (a paused lane
        returns nothing), so the ledger refuses none except in a rebalance's first poll.
        """
        reading = {lane for lane in self._topics.values() if lane not in self._paused}
        room = min((self._credits.room(lane) for lane in reading), default=1)
        return min(max(1, room), _MAX_CONSUME)

    def _leave_group(self) -> None:
        """Unsubscribes and serves the group until it took every partition back.

        Closing a cooperative-sticky consumer while a rebalance is under way can hang in
        librdkafka (an incremental assignment arriving during close); giving the partitions
        back first, through the normal revoke path, leaves nothing for close to do.
        Messages that still arrive are not delivered: their offsets are not committed, so
        the next owner reads them.
        """
        deadline = time.monotonic() + self._leave_s
        while self._commits_in_flight and time.monotonic() < deadline:
            self._consumer.consume(_MAX_CONSUME, _POLL_TIMEOUT_S)  # serves the commit result
        self._consumer.unsubscribe()
        while self._epochs and time.monotonic() < deadline:
            self._consumer.consume(_MAX_CONSUME, _POLL_TIMEOUT_S)

    def _drain_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            command()

    def _apply_backpressure(self) -> None:
        assignment = self._consumer.assignment()
        for lane in LANES:
            owned = [tp for tp in assignment if self._topics.get(tp.topic) == lane]
            room = self._credits.room(lane)
            if lane not in self._paused and room <= 0 and owned:
                self._consumer.pause(owned)
                self._paused.add(lane)
            elif lane in self._paused and room >= max(1, self._credits.resume_at(lane)):
                self._consumer.resume(owned)
                self._paused.discard(lane)

    def _deliver(self, messages: list[Message]) -> None:
        good: list[Message] = []
        keys: list[PartitionKey] = []
        for message in messages:
            error = message.error()
            if error is not None:
                # A consumer's fatal error arrives as an event whose code is _FATAL; its
                # fatal() flag is not set on that event (confluent-kafka 2.x).
                if error.fatal() or error.code() == KafkaError._FATAL:
                    raise SourceError(f"fatal consumer error: {error.str()}")
                # Partition EOF and transient broker errors are informational here.
                log.warning("consumer error: %s", error)
                continue
            topic, partition = message.topic() or "", message.partition() or 0
            epoch = self._epochs.get((topic, partition))
            if epoch is None:
                continue  # a message of a partition revoked a moment ago
            good.append(message)
            keys.append(PartitionKey(topic, partition, epoch))
        refs = [(key, m.offset() or 0) for m, key in zip(good, keys, strict=True)]
        refused = self._credits.hand_over(refs)
        if refused:
            kept = self._rewind(refused, refs)
            good = [m for m, ref in zip(good, refs, strict=True) if ref in kept]
            keys = [ref[0] for ref in refs if ref in kept]
        if good:
            self._listener.on_messages(good, keys)

    def _rewind(
        self, refused: dict[PartitionKey, int], refs: list[tuple[PartitionKey, int]]
    ) -> set[tuple[PartitionKey, int]]:
        """Seeks each partition back to its first refused message; returns what was held.

        Where a seek fails the refused messages are held anyway, beyond the bound: a message
        skipped here would be a gap the commit could pass over.
        """
        kept = set(refs)
        for key, offset in refused.items():
            beyond = [r for r in refs if r[0] == key and r[1] >= offset]
            try:
                self._consumer.seek(TopicPartition(key.topic, key.partition, offset))
                kept.difference_update(beyond)
            except KafkaException as exc:
                where = f"{key.topic}[{key.partition}]"
                log.warning("rewind of %s failed, holding its messages: %s", where, exc)
                self._credits.force(beyond)
        return kept

    def _commit(self, offsets: dict[PartitionKey, int], *, asynchronous: bool) -> None:
        current = [
            TopicPartition(k.topic, k.partition, offset)
            for k, offset in offsets.items()
            if self._epochs.get((k.topic, k.partition)) == k.epoch
        ]
        if not current:
            return
        try:
            if asynchronous:
                self._consumer.commit(offsets=current, asynchronous=True)
                self._commits_in_flight += 1
            else:
                self._consumer.commit(offsets=current, asynchronous=False)
        except KafkaException as exc:
            # Not fatal: the same offsets (or later ones) are offered again next time.
            log.warning("commit of %d partitions failed: %s", len(current), exc)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """Commit results (served by poll on this thread). A commit rejected during a
        rebalance (stale generation) would otherwise never be retried: the offset it
        carried is already marked as committed on the worker side."""
        self._commits_in_flight = max(0, self._commits_in_flight - 1)
        failed = [tp for tp in partitions if error is not None or tp.error is not None]
        keys = [
            PartitionKey(tp.topic, tp.partition, self._epochs[(tp.topic, tp.partition)])
            for tp in failed
            if tp.topic is not None and (tp.topic, tp.partition) in self._epochs
        ]
        if keys:
            log.info("commit of %d partitions failed (%s); offering them again", len(keys), error)
            self._listener.on_commit_failed(keys)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._metadata = consumer.consumer_group_metadata()  # the new generation's
        keys = []
        for tp in partitions:
            key = PartitionKey(tp.topic, tp.partition, self._next_epoch)
            self._next_epoch += 1
            self._epochs[(tp.topic, tp.partition)] = key.epoch
            keys.append(key)
        self._listener.on_assigned(keys)
        paused = [tp for tp in partitions if self._topics.get(tp.topic) in self._paused]
        if paused:
            # New partitions of a paused lane join it until its room returns. (Resuming
            # right after assigning is avoided: it can race the fetch start in librdkafka.)
            consumer.incremental_assign(partitions)
            consumer.pause(paused)
        log.info("assigned %s", [f"{k.topic}[{k.partition}]" for k in keys])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Cooperative rebalancing revokes after the new generation began: a transaction
        # committing the revoked partitions' offsets must carry that generation.
        self._metadata = consumer.consumer_group_metadata()
        self._release(partitions, lost=False)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._metadata = consumer.consumer_group_metadata()
        self._release(partitions, lost=True)

    def _release(self, partitions: list[TopicPartition], *, lost: bool) -> None:
        keys = [
            PartitionKey(tp.topic, tp.partition, self._epochs[(tp.topic, tp.partition)])
            for tp in partitions
            if (tp.topic, tp.partition) in self._epochs
        ]
        released = self._listener.on_revoked(keys, lost=lost)
        # The worker drains and commits on its loop; its commit comes back here as a command.
        while True:
            try:
                released.result(timeout=_POLL_TIMEOUT_S)
                break
            except concurrent.futures.TimeoutError:
                self._drain_commands()
        self._drain_commands()
        if partitions:
            # librdkafka keeps a partition's pause flag across revoke and re-assignment;
            # a partition paused now would never fetch again if it came back to us.
            self._consumer.resume(partitions)
        for key in keys:
            del self._epochs[(key.topic, key.partition)]
        log.info(
            "%s %s", "lost" if lost else "revoked", [f"{k.topic}[{k.partition}]" for k in keys]
        )
