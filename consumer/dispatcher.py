"""Dispatch: a micro-batch the batcher admitted goes to the evaluator; its outcomes come back.

Each batch runs as one task, attached to its partitions in the ledger (revoke and shutdown
wait for it, then cancel it). Each job's outcome frees its window slot in the ledger the
moment it is final, tells the window controller, and goes to the publisher; a second outcome
of the same job (an evaluation that failed after it reported) is ignored. A task cancelled
before its jobs reported frees their slots; a task that raises is a death the supervisor
stops the worker for (its jobs' offsets stay open, so they are read again).
"""

from __future__ import annotations

import asyncio

from consumer.evaluator import Evaluator
from consumer.jobs import Job
from consumer.ledger import RequestLedger
from consumer.metrics import Metrics
from consumer.publisher import OutcomePublisher
from consumer.records import Outcome
from consumer.supervisor import Supervisor
from consumer.window_controller import WindowController


class Dispatcher:
    """Runs admitted batches through the evaluator (event loop).

    Args:
        ledger: the request ledger.
        evaluator: turns jobs into outcomes.
        publisher: publishes each outcome.
        controller: the window controller (told of each completion).
        supervisor: told when an evaluation task raises.
        metrics: the metrics catalogue.
    """

    def __init__(
        self,
        ledger: RequestLedger,
        evaluator: Evaluator,
        publisher: OutcomePublisher,
        controller: WindowController,
        supervisor: Supervisor,
        metrics: Metrics,
    ) -> None:
        self._ledger = ledger
        self._evaluator = evaluator
        self._publisher = publisher
        self._controller = controller
        self._supervisor = supervisor
        self._metrics = metrics

    def dispatch(self, jobs: list[Job]) -> None:
        """Starts evaluating a batch that took window slots (the batcher's callback)."""
        self._metrics.batch_size.observe(len(jobs))
        self._ledger.admitted(jobs)
        task = asyncio.create_task(self._evaluator.run(jobs, self.report))
        self._ledger.attach({job.source for job in jobs}, task)
        task.add_done_callback(lambda done: self._ended(done, jobs))

    def report(self, outcome: Outcome) -> None:
        """One job's final outcome: free its slot and publish it (once)."""
        if not self._ledger.outcome(outcome.job):
            return
        self._controller.completed()
        self._publisher.emit(outcome)

    def _ended(self, task: asyncio.Task[None], jobs: list[Job]) -> None:
        if task.cancelled() or task.exception() is not None:
            self._ledger.abandon(jobs)
        if not task.cancelled() and (error := task.exception()) is not None:
            self._supervisor.fail("an evaluation task", f"{type(error).__name__}: {error}")
