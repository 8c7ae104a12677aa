"""Runs jobs through the engine under the failure policy, one outcome per job.

A micro-batch goes out as one call where the backend takes a list, otherwise as
concurrent calls; either way each job's outcome is reported the moment it is final,
so a slow request never holds back the others' results or window slots.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from consumer.backends.base import Backend, Completion, Prompt
from consumer.errors import (
    DeadlineExpired,
    EngineError,
    EngineOverloaded,
    EvalstreamError,
    InvalidOutput,
    TruncatedOutput,
)
from consumer.failure_table import EngineCircuit, FailurePolicy, RetryState
from consumer.jobs import Job
from consumer.lanes import INTERACTIVE
from consumer.metrics import Metrics
from consumer.prompts import PromptTemplate, evaluation_schema, without_string_bounds
from consumer.records import (
    Outcome,
    OutcomeHandler,
    batch_output,
    dead_letter,
    evaluation_result,
    parse_evaluation,
)
from consumer.reply_budget import reply_token_bound
from consumer.result_cache import CachedReply, ResultCache, cache_key
from consumer.schemas import BatchRequestLine, EvaluationRequest
from consumer.settings import EngineSettings

log = logging.getLogger(__name__)

_FREE_TEXT_MAX_TOKENS = 512  # without a schema nothing bounds the reply


class Evaluator:
    """Turns jobs into outcomes.

    Args:
        backend: the engine.
        template: the prompt template.
        policy: retry / dead-letter decisions.
        circuit: the engine circuit (waited on while the engine is down).
        metrics: the metrics catalogue.
        engine: engine settings (defaults for generation).
        worker_id: recorded in results and dead letters.
        batches: send a micro-batch as one call (the backend takes a list).
        on_overload: called when the engine signals overload (the window backs off).
        cache: the result cache, where it is on.
        interactive_priority: the engine priority of interactive requests (vLLM), or None.
    """

    def __init__(
        self,
        backend: Backend,
        template: PromptTemplate,
        policy: FailurePolicy,
        circuit: EngineCircuit,
        metrics: Metrics,
        engine: EngineSettings,
        worker_id: str,
        *,
        batches: bool = False,
        on_overload: Callable[[], None] | None = None,
        cache: ResultCache | None = None,
        interactive_priority: int | None = None,
    ) -> None:
        self._backend = backend
        self._template = template
        self._policy = policy
        self._circuit = circuit
        self._metrics = metrics
        self._engine = engine
        self._worker_id = worker_id
        self._batches = batches
        self._on_overload = on_overload or (lambda: None)
        self._cache = cache
        self._interactive_priority = interactive_priority
        bounded = evaluation_schema() if engine.structured_output else None
        self._schema = (
            without_string_bounds(bounded) if bounded and not engine.string_bounds else bounded
        )
        # The validator keeps the bounds either way, so a reply it accepts always fits.
        self._max_tokens = engine.max_tokens or default_max_tokens(bounded)
        bound = reply_token_bound(self._schema) if self._schema else None
        if bound and self._max_tokens < bound:
            log.warning(
                "max_tokens %d is below the %d tokens a reply that follows the schema may take: "
                "such replies are cut and published as errors (reason truncated)",
                self._max_tokens,
                bound,
            )

    async def run(self, jobs: list[Job], report: OutcomeHandler) -> None:
        """Evaluates ``jobs``; calls ``report`` once per job as soon as it is final."""
        jobs = [job for job in jobs if not self._expired(job, report)]
        if not jobs:
            return
        prompts = [self._prompt(job) for job in jobs]
        if self._cache is not None:  # one call per job: hits and shared calls resolve alone
            await asyncio.gather(
                *(
                    self._guarded(j, self._through_cache(j, p, report), report)
                    for j, p in zip(jobs, prompts, strict=True)
                )
            )
        elif self._batches and len(jobs) > 1:
            replies = await self._call(jobs, prompts)
            await asyncio.gather(
                *(
                    self._guarded(j, self._follow_up(j, p, r, report), report)
                    for j, p, r in zip(jobs, prompts, replies, strict=True)
                )
            )
        else:
            await asyncio.gather(
                *(
                    self._guarded(j, self._one(j, p, report), report)
                    for j, p in zip(jobs, prompts, strict=True)
                )
            )

    async def _guarded(
        self, job: Job, work: Coroutine[Any, Any, None], report: OutcomeHandler
    ) -> None:
        """Runs one job's work; an unexpected exception dead-letters it instead of losing it."""
        try:
            await work
        except Exception as exc:
            # The worker ignores a second outcome of a job whose outcome was final already.
            log.exception("evaluation of %s failed unexpectedly", job.request_id)
            error = EvalstreamError(f"{type(exc).__name__}: {exc}", reason="internal_error")
            report(dead_letter(job, error, self._worker_id))

    async def _through_cache(self, job: Job, prompt: Prompt, report: OutcomeHandler) -> None:
        """Answers from the cache, waits for an identical call in flight, or calls the engine."""
        assert self._cache is not None
        if not isinstance(job.request, EvaluationRequest) or job.route is None:
            await self._one(job, prompt, report)
            return
        job.cache_key = cache_key(job.route, prompt)
        async with self._cache.claim(job.cache_key) as cached:
            self._metrics.cache_lookup("hit" if cached else "miss")
            if cached is None:
                await self._one(job, prompt, report)
                return
            value = evaluation_result(
                job, job.route, self._worker_id, None, parse_evaluation(cached.text), None, cached
            )
            report(Outcome(job, "result", value, None, "ok"))

    async def _one(self, job: Job, prompt: Prompt, report: OutcomeHandler) -> None:
        (reply,) = await self._call([job], [prompt])
        await self._follow_up(job, prompt, reply, report)

    async def _follow_up(
        self, job: Job, prompt: Prompt, reply: Completion | EngineError, report: OutcomeHandler
    ) -> None:
        """Carries out the failure table's decisions for one job until its outcome is final."""
        state = RetryState()
        while True:
            error = self._judge(job, prompt, reply)
            if error is None:
                assert isinstance(reply, Completion)
                report(self._success(job, reply))
                return
            repairable = isinstance(reply, Completion) and bool(prompt.messages)
            decision = self._policy.decide(error, state, repairable=repairable)
            if decision.action == "repair":
                self._metrics.retry("invalid_output")
                prompt = self._repair_prompt(prompt, reply)
            elif decision.action == "retry":
                self._metrics.retry(error.reason)
                if isinstance(error, EngineOverloaded):
                    self._on_overload()
                await asyncio.sleep(decision.delay_s)
                await self._circuit.wait_closed()
            else:
                completion = reply if isinstance(reply, Completion) else None
                if decision.action == "error_result":
                    report(self._finish(job, completion, error))
                else:
                    report(self._dead_letter(job, error, decision.reason))
                return
            if self._expired(job, report):  # the deadline is checked before every retry
                return
            (reply,) = await self._call([job], [prompt])

    def _judge(
        self, job: Job, prompt: Prompt, reply: Completion | EngineError
    ) -> EvalstreamError | None:
        """What is wrong with ``reply``; None when it is a usable answer."""
        if isinstance(reply, EvalstreamError):
            return reply
        if self._cut(job, reply):
            return _truncated(reply, prompt)
        if not self._valid(job, reply):
            return InvalidOutput(_describe_invalid(reply))
        return None

    async def _call(self, jobs: list[Job], prompts: list[Prompt]) -> list[Completion | EngineError]:
        assert jobs[0].route is not None
        started = time.monotonic()
        for job in jobs:
            if job.sent_at is None:
                job.sent_at = started
                self._metrics.queue_wait.observe(started - job.consumed_at)
        replies = await self._backend.complete(jobs[0].route.model, prompts)
        elapsed = time.monotonic() - started
        self._metrics.engine_latency.observe(elapsed)
        for job, reply in zip(jobs, replies, strict=True):
            job.attempts += 1
            job.inference_s += elapsed
            if isinstance(reply, Completion):
                self._circuit.record_success()
                self._metrics.tokens(
                    job.route.model if job.route else "",
                    reply.prompt_tokens,
                    reply.completion_tokens,
                )
        return replies

    def _expired(self, job: Job, report: OutcomeHandler) -> bool:
        """Reports ``job`` as expired when its deadline has passed (it is then not sent)."""
        if job.deadline_s is None or time.time() < job.deadline_s:
            return False
        late = time.time() - job.deadline_s
        self._metrics.expired.inc()
        error = DeadlineExpired(f"the deadline passed {late:.3f} s before the engine call")
        report(self._finish(job, None, error))
        return True

    def _prompt(self, job: Job) -> Prompt:
        request = job.request
        priority = self._interactive_priority if job.lane == INTERACTIVE else None
        if isinstance(request, BatchRequestLine):
            body: dict[str, Any] = request.body
            return Prompt(
                messages=(), max_tokens=0, temperature=0.0, raw_body=body, priority=priority
            )
        assert isinstance(request, EvaluationRequest)
        params = request.params
        return Prompt(
            messages=self._template.render(request),
            max_tokens=(params.max_tokens if params and params.max_tokens else None)
            or self._max_tokens,
            temperature=params.temperature
            if params and params.temperature is not None
            else self._engine.temperature,
            seed=params.seed if params else None,
            schema=self._schema,
            priority=priority,
        )

    def _cut(self, job: Job, reply: Completion) -> bool:
        """A native reply cut at max_tokens: final, since a repair would be cut again."""
        return isinstance(job.request, EvaluationRequest) and reply.finish_reason == "length"

    def _valid(self, job: Job, reply: Completion) -> bool:
        if isinstance(job.request, BatchRequestLine):
            return True  # batch lines are passed through; their caller judges the content
        return _evaluation_error(reply.text) is None

    def _repair_prompt(self, prompt: Prompt, reply: Completion | EngineError) -> Prompt:
        assert isinstance(reply, Completion)
        messages = self._template.repair_messages(
            prompt.messages, reply.text, _describe_invalid(reply)
        )
        return dataclasses.replace(prompt, messages=messages)

    def _success(self, job: Job, reply: Completion) -> Outcome:
        if self._cache is not None and job.cache_key is not None:
            now = datetime.now(UTC).isoformat()
            tokens = (reply.prompt_tokens, reply.completion_tokens)
            self._cache.put(job.cache_key, CachedReply(reply.text, now, *tokens))
        return self._finish(job, reply, None)

    def _finish(
        self, job: Job, completion: Completion | None, error: EvalstreamError | None
    ) -> Outcome:
        assert job.route is not None
        if isinstance(error, InvalidOutput):
            self._metrics.invalid_output(error.reason)
        if isinstance(job.request, BatchRequestLine):
            value = batch_output(job, completion, error)
        else:
            evaluation = parse_evaluation(completion.text) if completion and error is None else None
            value = evaluation_result(
                job, job.route, self._worker_id, completion, evaluation, error
            )
        return Outcome(job, "result", value, None, "ok" if error is None else "error", error)

    def _dead_letter(self, job: Job, error: EvalstreamError, reason: str) -> Outcome:
        if (
            isinstance(job.request, BatchRequestLine)
            and isinstance(error, EngineError)
            and error.status_code
        ):
            # Batch tooling expects one output line per custom_id, errors included.
            return self._finish(job, None, error)
        return dead_letter(job, error, self._worker_id, reason)


def _evaluation_error(text: str) -> str | None:
    """Why ``text`` is not a valid evaluation, naming the fields; None when it is."""
    try:
        parse_evaluation(text)
    except ValidationError as exc:
        problems = exc.errors(include_url=False)[:5]
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in problems
        )
    except ValueError as exc:
        return f"not JSON: {exc}"
    return None


def default_max_tokens(schema: dict[str, Any] | None) -> int:
    """The completion cap when none is configured: the schema's bound, else 512."""
    bound = reply_token_bound(schema) if schema is not None else None
    return bound or _FREE_TEXT_MAX_TOKENS


def _truncated(reply: Completion, prompt: Prompt) -> TruncatedOutput:
    return TruncatedOutput(
        f"the reply was cut at max_tokens={prompt.max_tokens} "
        f"({reply.completion_tokens} tokens generated) before the JSON object ended"
    )


def _describe_invalid(reply: Completion | EngineError) -> str:
    if isinstance(reply, EngineError):
        return reply.message
    return _evaluation_error(reply.text) or "invalid reply"
