"""From a parsed request to generated text: answer, scheduling, faults, aborts and counters.

Both protocol front-ends (``openai_routes``, ``ollama_routes``) turn their request into
:class:`GenerationRequest` values and let :class:`Generator` do the rest, so the two protocols
share one engine, one fault switch and one set of counters. A handler that is cancelled
(aiohttp cancels it when the client closes the connection) aborts its sequences, which leave
the batch at once, as vLLM aborts a request whose client disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from evalstream_local.simulator.fakejson import JSON_OBJECT_SCHEMA, FakeJson, corrupt, fake_text
from evalstream_local.simulator.faults import FaultInjector, FaultMode
from evalstream_local.simulator.profile import SimulatorProfile
from evalstream_local.simulator.scheduler import EngineBusyError, Scheduler
from evalstream_local.simulator.sequence import Sequence
from evalstream_local.simulator.tokens import CHARS_PER_TOKEN, block_hashes, count_tokens


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete, protocol-independent.

    Attributes:
        prompt: The rendered prompt (chat template applied).
        prompt_tokens: Its length in tokens, after any truncation.
        schema: JSON Schema the answer must satisfy, if any.
        json_mode: Any JSON object will do (``json_object`` / Ollama ``format: "json"``).
        max_tokens: Generation limit; ``None`` lets the answer end by itself.
        context_room: Tokens left in the context window; the answer stops there ("length").
        min_tokens: The answer is padded (whitespace for JSON) to at least this length.
        ignore_eos: Generate exactly ``max_tokens`` tokens (benchmarks' fixed output length).
        seed: Sampling seed; same seed and prompt give the same answer.
        temperature: 0 is greedy: the answer depends on the prompt alone.
    """

    prompt: str
    prompt_tokens: int
    schema: Mapping[str, Any] | None = None
    json_mode: bool = False
    max_tokens: int | None = None
    context_room: int | None = None
    min_tokens: int = 0
    ignore_eos: bool = False
    seed: int | None = None
    temperature: float | None = None


@dataclass
class SimulatorStats:
    """Request counters of the simulator, reported by ``GET /_simulator/stats``.

    Every generation request counts once in ``received`` and, once answered, once in
    ``completed`` (2xx), ``rejected`` (503, queue full), ``errors`` (other 4xx/5xx) or
    ``aborted`` (the client went away first).
    """

    received: int = 0
    completed: int = 0
    aborted: int = 0
    rejected: int = 0
    errors: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    def record(self, status: int) -> None:
        """Counts one answered request by its HTTP status."""
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status < 400:
            self.completed += 1
        elif status == 503:
            self.rejected += 1
        else:
            self.errors += 1


class Generator:
    """Builds sequences, runs them through the scheduler and counts what happens."""

    def __init__(
        self, profile: SimulatorProfile, scheduler: Scheduler, faults: FaultInjector
    ) -> None:
        self.profile = profile
        self.scheduler = scheduler
        self.faults = faults
        self.stats = SimulatorStats()

    async def admit(self) -> FaultMode:
        """Counts a request and applies the fault drawn for it.

        ``hang`` never returns (the handler is cancelled when its client leaves);
        ``latency_spike`` returns after the spike. The other modes are for the caller to apply.
        """
        fault = self.faults.draw()
        if fault is FaultMode.HANG:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.stats.aborted += 1
                raise
        if fault is FaultMode.LATENCY_SPIKE:
            await asyncio.sleep(self.profile.latency_spike_s / self.profile.time_scale)
        return fault

    def sequence(self, request: GenerationRequest, fault: FaultMode = FaultMode.NONE) -> Sequence:
        """Decides the answer to ``request`` and wraps it in a sequence ready to schedule."""
        text = self._answer(request)
        if fault is FaultMode.MALFORMED:
            text = corrupt(text)
        # With ignore_eos the model never stops by itself: it runs into max_tokens. Free text
        # with a limit is written to that limit, so it ends there too.
        free_text = request.schema is None and not request.json_mode
        forced = request.max_tokens if request.ignore_eos or free_text else None
        natural = count_tokens(text)
        target = max(forced or natural, request.min_tokens, 1)
        if target > natural:
            text = _pad(text, target, structured=request.schema is not None or request.json_mode)
        limits = [x for x in (request.max_tokens, request.context_room) if x is not None]
        limit = min(limits) if limits else target
        if target <= limit and forced is None:
            output, reason = target, "stop"
        else:
            output, reason = max(1, min(target, limit)), "length"
        hashes = block_hashes(request.prompt, self.profile.block_tokens)
        return Sequence(request.prompt_tokens, output, text, reason, block_hashes=hashes)

    def submit(self, sequences: list[Sequence]) -> None:
        """Queues sequences; on :class:`EngineBusyError` none of them stays queued."""
        try:
            for seq in sequences:
                self.scheduler.submit(seq)
        except EngineBusyError:
            for seq in sequences:
                if seq.progress is not None:
                    self.scheduler.abort(seq)
            raise

    @contextlib.contextmanager
    def guard(self, sequences: list[Sequence]) -> Iterator[None]:
        """Aborts ``sequences`` if the block fails or is cancelled (the client went away)."""
        try:
            yield
        except BaseException:
            self.abort(sequences)
            raise

    async def complete(self, sequences: list[Sequence]) -> None:
        """Waits until every sequence has finished; aborts them all if the caller is cancelled."""
        with self.guard(sequences):
            await asyncio.gather(*(self.scheduler.wait(seq) for seq in sequences))

    async def stream(self, seq: Sequence) -> AsyncIterator[str]:
        """Yields the text of the tokens as they are generated (use inside :meth:`guard`)."""
        pieces = seq.pieces
        sent = 0
        async for count in self.scheduler.progress(seq):
            chunk = "".join(pieces[sent:count])
            sent = count
            yield chunk

    def abort(self, sequences: list[Sequence]) -> None:
        """Drops sequences from the engine and counts the request as aborted once."""
        aborted = [self.scheduler.abort(seq) for seq in sequences if seq.progress is not None]
        if any(aborted):
            self.stats.aborted += 1

    def _answer(self, request: GenerationRequest) -> str:
        seed = _seed(request)
        if request.schema is not None:
            return FakeJson(request.schema, seed).text()
        if request.json_mode:
            return FakeJson(JSON_OBJECT_SCHEMA, seed).text()
        length = request.max_tokens or self.profile.default_text_tokens
        return fake_text(length, seed)


def _seed(request: GenerationRequest) -> int:
    """Same prompt and seed, same answer; unseeded sampling above temperature 0 varies."""
    if request.seed is None and request.temperature != 0.0:
        return random.getrandbits(64)
    digest = hashlib.blake2b(request.prompt.encode(), digest_size=8, key=str(request.seed).encode())
    return int.from_bytes(digest.digest(), "big")


def _pad(text: str, tokens: int, *, structured: bool) -> str:
    """Extends ``text`` to ``tokens`` tokens: whitespace after JSON keeps it valid, prose else."""
    missing = tokens * CHARS_PER_TOKEN - len(text)
    if missing <= 0:
        return text
    if structured:
        return text + "\n" * missing
    return text + " " + fake_text(count_tokens(" " * missing), len(text))[: missing - 1]
