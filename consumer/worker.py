"""The worker: assembles the parts and supervises them; the parts do the work.

Where a request goes, one module per step:
read: `request_source` (the consumer thread; how much it may read is the `ledger`'s to say) →
admit: `intake` (accept, decode with `jobs`, route with `router`; invalid → dead letter) →
`batcher` (into the `admission` window, interactive `lanes` first; the window sized by
`window_controller`) → send: `dispatcher` → `evaluator` (the `result_cache`, engine calls
through `backends`) → judge: the `failure_table` (retry, repair, result or dead letter) →
`records` (the outcome) → publish: `publisher` → `result_sink` → commit: `committer`
(at-least-once through the consumer's thread; exactly-once in `transactions`).

The `ledger` records every request's transitions and answers for them (room per lane,
committable offsets, what must drain); the `supervisor` owns every task and thread and stops
the process when one dies. The Kafka clients are opened where the process starts
(`kafka_clients`) and passed in; the worker starts them, and stops and closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from consumer.admission import AdmissionWindow
from consumer.backends.base import Backend
from consumer.batcher import MicroBatcher
from consumer.committer import COMMIT_RESERVE_S, Committer
from consumer.deadline import Deadline
from consumer.dispatcher import Dispatcher
from consumer.engine_monitor import EngineMonitor
from consumer.errors import CommitError
from consumer.evaluator import Evaluator
from consumer.failure_table import EngineCircuit, FailurePolicy
from consumer.intake import RequestIntake
from consumer.kafka_clients import KafkaClients
from consumer.ledger import RequestLedger, release_at
from consumer.metrics import Metrics
from consumer.prompts import PromptTemplate
from consumer.publisher import OutcomePublisher
from consumer.rebalancer import Rebalancer
from consumer.router import ModelRouter
from consumer.settings import Settings
from consumer.status import StatusReporter
from consumer.window_controller import WindowController
from consumer.window_policy import configured_policy, start_limit

_LEAVE_FLOOR_S = 5.0  # leaving the group gets this long even when the budget is spent


class Worker:
    """One consumer-group member driving one engine; built on the loop that runs it.

    Args:
        settings: the whole configuration.
        backend: the engine client.
        router: model routing.
        template: the prompt template.
        metrics: the metrics catalogue.
        clients: the Kafka clients and their supervisor (the worker starts and closes them).
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
        self.settings, self._clients = settings, clients
        self._stop = asyncio.Event()
        self.supervisor = clients.supervisor
        self.supervisor.on_failure(self.request_stop)
        self._loop = asyncio.get_running_loop()
        w, kafka, topics = settings.window, settings.kafka, clients.source.topics
        self.window = AdmissionWindow(start_limit(w), buffer=w.buffer)
        release = release_at(kafka.processing_guarantee)
        self.ledger = RequestLedger(self.window, settings.lanes, topics, release_at=release)
        circuit = EngineCircuit(settings.retry.circuit_failures)
        policy = configured_policy(w, start_limit(w))
        self.controller = WindowController(self.window, policy, backend, metrics, w.interval_s)
        self.monitor = EngineMonitor(backend, circuit, self.window, metrics)
        self._committer = Committer(
            self.ledger, clients.path, kafka.commit_interval_s, clients.sink
        )
        fail = self.supervisor.fail
        publisher = OutcomePublisher(self.ledger, self._committer, metrics, fail)
        evaluator = Evaluator(
            backend, template, FailurePolicy(settings.retry, circuit), circuit, metrics,
            settings.engine, settings.worker_id, batches=batches,
            on_overload=self.controller.overloaded, cache=clients.cache,
            interactive_priority=settings.lanes.engine_priority,
        )  # fmt: skip
        dispatcher = Dispatcher(
            self.ledger, evaluator, publisher, self.controller, self.supervisor, metrics
        )
        self._batcher = MicroBatcher.configured(
            self.window, dispatcher.dispatch, w, settings.lanes, self.ledger.bulk_room
        )
        intake = RequestIntake(
            self._loop, self.ledger, self._batcher, publisher, router, metrics, lanes=topics,
            max_bytes=kafka.max_request_bytes, worker_id=settings.worker_id, on_failure=fail,
        )  # fmt: skip
        self.status = StatusReporter(self.ledger, clients.source, metrics, circuit, self.monitor)
        self._rebalancer = Rebalancer(
            self._loop, intake, self.ledger, self._batcher, self._committer, self.supervisor,
            self.status, settings.rebalance_deadline_s,
        )  # fmt: skip

    @property
    def failed(self) -> bool:
        """Whether a part died (the process exits with code 1)."""
        return self.supervisor.failed

    def request_stop(self) -> None:
        """Begins a graceful shutdown (signal handlers and the supervisor call this)."""
        self._stop.set()

    async def run(self) -> None:
        """Consumes until `request_stop`, then drains, commits and closes."""
        self._clients.source.start(self._rebalancer, self.ledger)
        spawn = self.supervisor.spawn
        spawn("the micro-batcher", self._batcher.run())
        spawn("the window controller", self.controller.run())
        spawn("the engine monitor", self.monitor.run())
        spawn("the committer", self._committer.run())
        spawn("the status reporter", self.status.run())
        signals: dict[signal.Signals, Any] = {signal.SIGTERM: self.request_stop}
        signals[signal.SIGINT] = self.request_stop
        if self.settings.test_faults:
            signals[signal.SIGUSR1] = self.status.inject_death
            signals[signal.SIGUSR2] = self._clients.sink.inject_fatal
        for sig, handler in signals.items():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(sig, handler)
        await self._stop.wait()
        await self._shutdown()

    async def _shutdown(self) -> None:
        """Stop admitting, drain and commit under one deadline, leave, flush."""
        grace = self.settings.shutdown_grace_s
        self.status.stopping(grace)
        deadline = Deadline.after(grace + COMMIT_RESERVE_S)
        self._rebalancer.shutdown = deadline  # a revoke while leaving shares the budget
        self.ledger.drain_mode()  # 1. no room for any lane: the source pauses
        await self.supervisor.stop()  # 2. the parts' tasks end (no window reopens now)
        self.window.close()
        self.ledger.dropped(self._batcher.clear())  # 3. queued jobs stay uncommitted
        try:
            await self._committer.final(deadline)  # 4. drain in-flight work, commit it
        except CommitError as exc:
            self.supervisor.fail("the committer", exc.message)
        source = self._clients.source  # 5. leave the group (its revokes share the budget)
        await asyncio.to_thread(source.stop, deadline.remaining(_LEAVE_FLOOR_S))
        await asyncio.to_thread(self._committer.close, deadline)  # 6. flush
        if self._clients.cache_topic is not None:
            await asyncio.to_thread(self._clients.cache_topic.close)
        self.status.stopped()

    # ----- probes ----------------------------------------------------------------------

    def live(self) -> tuple[bool, str]:
        """Liveness (``/healthz``): no part died, the loop and the consumer thread tick."""
        return self.status.live(self.supervisor.cause)

    def ready(self) -> tuple[bool, str]:
        """Readiness (``/readyz``): consuming, engine healthy, circuit closed."""
        return self.status.ready(self._clients.log.problem())
