"""The worker: wires the parts together; the parts do the work.

Data path, one file per stage:
`request_source` (the consumer thread reads; `demand` is its backpressure per lane) →
`jobs` (decode) → `router` (pick the model; `deadlines`) → `batcher` (admission into the
`admission` window, interactive `lanes` first, sized by `window_controller` with
`occupancy`) → `evaluator` (the `result_cache`, then engine calls under `failures`, the
failure policy) → `records` (the outcome: result or dead letter)
→ `publisher` → `committer` (at-least-once: `result_sink` sends, acks=all, then the
offset completes in `partitions`/`offsets` and is committed; exactly-once:
`transactions` produces outcomes and offsets in one transaction).
Nothing is completed before the broker acknowledged its result (or the transaction
holds it), so a committed offset never covers a request without a result.

The Kafka clients are opened where the process starts (`kafka_clients`) and passed in;
the worker starts them, and stops and closes them when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Coroutine
from typing import Any

from confluent_kafka import Message

from consumer.admission import AdmissionWindow
from consumer.backends.base import Backend
from consumer.batcher import MicroBatcher
from consumer.demand import LaneDemand
from consumer.engine_monitor import EngineMonitor
from consumer.errors import CommitError, EvalstreamError, RoutingError, SourceError
from consumer.evaluator import Evaluator
from consumer.failures import EngineCircuit, FailurePolicy
from consumer.jobs import Job, decode_job, job_from_message
from consumer.kafka_clients import KafkaClients
from consumer.lanes import BULK, LANES, Lane, lane_topics
from consumer.metrics import Metrics
from consumer.partitions import PartitionKey, PartitionRegistry
from consumer.prompts import PromptTemplate
from consumer.publisher import OutcomePublisher
from consumer.records import Outcome, dead_letter
from consumer.router import ModelRouter
from consumer.settings import Settings
from consumer.window_controller import WindowController
from consumer.window_policy import configured_policy

log = logging.getLogger(__name__)


class Worker:
    """One consumer-group member driving one engine; built on the loop that runs it.

    Args:
        settings: the whole configuration.
        backend: the engine client.
        router: model routing.
        template: the prompt template.
        metrics: the metrics catalogue.
        clients: the Kafka clients (the worker starts, stops and closes them).
        batches: the backend takes a micro-batch in one call.
    """

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        router: ModelRouter,
        template: PromptTemplate,
        metrics: Metrics,
        clients: KafkaClients,
        *,
        batches: bool = False,
    ) -> None:
        self.settings = settings
        self._router = router
        self._metrics = metrics
        self._source, self._sink, self._committer = clients.source, clients.sink, clients.committer
        self._kafka_log = clients.log
        self._loop = asyncio.get_running_loop()
        w = settings.window
        start = w.size if w.policy == "fixed" else min(max(w.size, w.min), w.max)
        self.window = AdmissionWindow(start, buffer=w.buffer)
        self._circuit = EngineCircuit(settings.retry.circuit_failures)
        self._evaluator = Evaluator(
            backend,
            template,
            FailurePolicy(settings.retry, self._circuit),
            self._circuit,
            metrics,
            settings.engine,
            settings.worker_id,
            batches=batches,
            on_overload=lambda: self.controller.overloaded(),
            cache=clients.cache,
            interactive_priority=settings.lanes.engine_priority,
        )
        self._cache_topic = clients.cache_topic
        policy = configured_policy(w, start)
        self.controller = WindowController(self.window, policy, backend, metrics, w.interval_s)
        self.monitor = EngineMonitor(backend, self._circuit, self.window, metrics)
        lanes = settings.lanes
        self._lanes = lane_topics(settings.kafka.requests_topic, lanes.interactive_topic)
        self._batcher = MicroBatcher.configured(
            self.window, self._dispatch, w, lanes, lambda free: self._demand.bulk_room(free)
        )
        self._partitions = PartitionRegistry()
        self._publisher = OutcomePublisher(self._partitions, self._committer, metrics)
        self._demand = LaneDemand(self.window, self._batcher, self._publisher, lanes)
        self._started = False
        self._draining = False
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.last_tick = time.monotonic()
        self.failed = False  # a fatal error ended the run (exit code 1)

    # ----- lifecycle -------------------------------------------------------------------

    def request_stop(self) -> None:
        """Begins a graceful shutdown (signal handlers call this)."""
        self._stop.set()

    def _fail(self, cause: str) -> None:
        """A fatal error: stop like SIGTERM, and exit non-zero."""
        log.error("stopping: %s", cause)
        self.failed = True
        self.request_stop()

    async def run(self) -> None:
        """Consumes until `request_stop`, then drains, commits and closes."""
        self._source.start(self)
        self._started = True
        self._spawn(
            self._batcher.run(),
            self.controller.run(),
            self.monitor.run(),
            self._commit_loop(),
            self._tick(),
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(sig, self.request_stop)
        await self._stop.wait()
        await self._shutdown()

    def _spawn(self, *coroutines: Coroutine[Any, Any, None]) -> None:
        self._tasks.extend(asyncio.create_task(c) for c in coroutines)

    async def _shutdown(self) -> None:
        """Stop admitting, drain within the grace period, commit, leave, flush."""
        log.info("shutting down: draining for up to %.0fs", self.settings.shutdown_grace_s)
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        self._draining = True  # 1. demand drops to 0: the source pauses
        self.window.close()
        self._batcher.clear()  # 2. queued jobs stay uncommitted: redelivered later
        cancelled = await self._partitions.drain(None, deadline)  # 3. finish in-flight work
        if cancelled:
            log.warning("%d requests did not finish in the grace period", cancelled)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        final: dict[PartitionKey, int] = {}
        try:
            final = await self._committer.final(self._partitions)  # 4. commit what is done
        except CommitError as exc:
            self._fail(exc.message)
        await asyncio.to_thread(self._source.stop, lambda: final)  # 5. leave the group
        await asyncio.to_thread(self._sink.close)  # 6. flush
        self._committer.close()
        if self._cache_topic is not None:
            await asyncio.to_thread(self._cache_topic.close)
        log.info("stopped")

    async def _tick(self) -> None:
        ticks = 0
        while True:
            ticks += 1
            if ticks % 20 == 0:  # every 10 s: one line an operator can follow a run by
                self._log_status()
            self.last_tick = time.monotonic()
            for lane in LANES:
                self._metrics.buffered[lane].set(self._batcher.queued(lane))
            self._metrics.in_flight.set(self.window.in_flight)
            self._metrics.paused_partitions.set(self._source.paused_count())
            await asyncio.sleep(0.5)

    def _log_status(self) -> None:
        log.info(
            "status: %d partitions%s, %d buffered, %d/%d in flight, %d incomplete",
            len(self._partitions),
            " (bulk paused)" if self._source.paused(BULK) else "",
            len(self._batcher),
            self.window.in_flight,
            self.window.limit,
            self._partitions.incomplete(),
        )

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.kafka.commit_interval_s)
            try:
                await self._committer.tick(self._partitions)
            except CommitError as exc:
                # Fenced: this process may not commit again; a restart resumes from the
                # last commit.
                self._fail(exc.message)
                return

    # ----- probes ----------------------------------------------------------------------

    def live(self) -> tuple[bool, str]:
        """Liveness: the event loop and the consumer thread both ticked recently."""
        if not self._started:
            return True, "starting: waiting for the engine"
        now = time.monotonic()
        loop_ok = now - self.last_tick < 10
        source_ok = now - self._source.last_poll_monotonic < 30
        return (
            loop_ok and source_ok,
            f"loop={'ok' if loop_ok else 'stuck'} consumer={'ok' if source_ok else 'stuck'}",
        )

    def ready(self) -> tuple[bool, str]:
        """Readiness: consuming, engine healthy, circuit closed."""
        kafka = self._kafka_log.problem()
        ok = (
            self._started
            and kafka is None
            and self.monitor.healthy
            and not self._circuit.is_open
            and not self._draining
        )
        detail = (
            f"engine={'up' if self.monitor.healthy else 'down'} assigned={len(self._partitions)}"
        )
        return ok, detail if kafka is None else f"{kafka}; {detail}"

    # ----- SourceListener (called from the consumer thread) ----------------------------

    def demand(self, lane: Lane) -> int:
        """How many more messages of ``lane`` the worker wants; 0 or less pauses them."""
        if self._draining or not self.window.is_open:
            return 0
        return self._demand.of(lane)

    def resume_at(self, lane: Lane) -> int:
        """The demand at which the lane's paused partitions resume."""
        return self._demand.resume_at(lane)

    def on_messages(self, messages: list[Message], keys: list[PartitionKey]) -> None:
        for lane in LANES:
            count = sum(1 for key in keys if self._lanes.get(key.topic, BULK) == lane)
            if count:
                self._demand.handed_over(lane, count)
        self._loop.call_soon_threadsafe(self._accept, messages, keys)

    def on_assigned(self, partitions: list[PartitionKey]) -> None:
        asyncio.run_coroutine_threadsafe(self._assign(partitions), self._loop).result()

    def on_revoked(self, partitions: list[PartitionKey], *, lost: bool) -> dict[PartitionKey, int]:
        future = asyncio.run_coroutine_threadsafe(self._revoke(partitions, lost), self._loop)
        return future.result()

    def on_commit_failed(self, partitions: list[PartitionKey]) -> None:
        self._loop.call_soon_threadsafe(self._partitions.retry_commits, partitions)

    def on_fatal(self, error: SourceError) -> None:
        self._loop.call_soon_threadsafe(self._fail, error.message)

    async def _assign(self, keys: list[PartitionKey]) -> None:
        self._partitions.assign(keys)
        self._metrics.rebalance("assigned", len(keys))
        self._metrics.assigned_partitions.set(len(self._partitions))

    async def _revoke(self, keys: list[PartitionKey], lost: bool) -> dict[PartitionKey, int]:
        self._batcher.drop(keys)
        if not lost:
            await self._partitions.drain(
                keys, time.monotonic() + self.settings.rebalance_deadline_s
            )
        offsets: dict[PartitionKey, int] = {}
        try:
            offsets = await self._committer.revoke(self._partitions, keys, lost=lost)
        except CommitError as exc:
            self._fail(exc.message)
        self._partitions.release(keys)
        self._metrics.rebalance("lost" if lost else "revoked", len(keys))
        self._metrics.assigned_partitions.set(len(self._partitions))
        return offsets

    # ----- the data path (event loop) --------------------------------------------------

    def _accept(self, messages: list[Message], keys: list[PartitionKey]) -> None:
        max_bytes = self.settings.kafka.max_request_bytes
        for message, key in zip(messages, keys, strict=True):
            lane = self._lanes.get(key.topic, BULK)
            self._demand.accepted(lane, 1)
            state = self._partitions.get(key)
            if state is None:
                continue  # revoked between poll and now; the next owner reads it
            job = job_from_message(message, key, lane)
            if not state.offsets.is_new(job.offset):
                # librdkafka may rewind a partition within one assignment (pause/resume
                # around a rebalance): that offset is already in progress or done here.
                continue
            self._metrics.consumed[lane].inc()
            state.offsets.track(job.offset)
            error: EvalstreamError | None = decode_job(job, max_bytes)
            if error is None:
                assert job.request is not None
                try:
                    job.route = self._router.route(job.request)
                except RoutingError as exc:
                    error = exc
            if error is None:
                self._batcher.add(job)
            else:
                self._publisher.emit(dead_letter(job, error, self.settings.worker_id))

    def _dispatch(self, jobs: list[Job]) -> None:
        self._metrics.batch_size.observe(len(jobs))
        self._demand.admitted(jobs)
        task = asyncio.create_task(self._evaluator.run(jobs, self._finished))
        self._partitions.attach({job.source for job in jobs}, task)
        task.add_done_callback(lambda t: self._release_if_cancelled(t, jobs))

    def _release_if_cancelled(self, task: asyncio.Task[None], jobs: list[Job]) -> None:
        """Slots of jobs whose task was cancelled (revoked partition) are returned here."""
        if task.cancelled() or task.exception() is not None:
            if not task.cancelled():
                log.error("evaluation task failed", exc_info=task.exception())
            unreported = [j for j in jobs if not j.reported]
            for job in unreported:
                job.reported = True
                self._demand.released(job)
            self.window.release(len(unreported))

    def _finished(self, outcome: Outcome) -> None:
        """One job's final outcome: free its slot and publish it."""
        outcome.job.reported = True
        self._demand.released(outcome.job)
        self.window.release()
        self.controller.completed()
        self._publisher.emit(outcome)
