"""The continuous-batching step model of the simulator, in simulated time and free of I/O.

One step is one forward pass. :meth:`BatchPlanner.plan` picks what the next step computes, the way
vLLM's scheduler does: running sequences first (one token each while decoding, the next chunk
while prefilling), then waiting sequences in arrival order while a slot (``max_num_seqs``), token
budget (``max_num_batched_tokens``) and KV room remain. The step lasts::

    step_base_s + per_seq_s * n + per_seq_sq_s * n * streamed + per_prefill_token_s * prefill_tokens

with ``n`` the sequences in the step, ``streamed`` those a client follows token by token (see
:mod:`evalstream_local.simulator.profile` for each term).

:meth:`BatchPlanner.complete` applies it: every sequence whose prompt is now computed samples one
token; a sequence that reaches its length finishes. Time never passes here: the asyncio
:class:`~evalstream_local.simulator.scheduler.Scheduler` sleeps the step's duration, a virtual-time
driver just adds it up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from evalstream_local.simulator.prefix_cache import PrefixCache
from evalstream_local.simulator.profile import SimulatorProfile
from evalstream_local.simulator.sequence import Sequence, SequenceState


class EngineBusyError(Exception):
    """The pending queue is full (Ollama's ``OLLAMA_MAX_QUEUE``)."""


@dataclass(frozen=True)
class StepPlan:
    """What one step computes.

    Attributes:
        work: Each scheduled sequence with the number of tokens it computes this step.
        prefill_tokens: Prompt tokens among them (decode tokens excluded).
        duration_s: How long the step takes, in simulated seconds.
    """

    work: tuple[tuple[Sequence, int], ...]
    prefill_tokens: int
    duration_s: float


class BatchPlanner:
    """Waiting and running sequences, the KV cache and the prefix cache of one engine."""

    def __init__(self, profile: SimulatorProfile) -> None:
        self.profile = profile
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        blocks = profile.kv_capacity_tokens // profile.block_tokens if profile.prefix_caching else 0
        self.prefix_cache = PrefixCache(blocks, profile.block_tokens)
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.finished_total: dict[str, int] = {"stop": 0, "length": 0, "abort": 0}
        self.preemptions_total = 0

    @property
    def kv_used_tokens(self) -> int:
        """Tokens whose KV the running sequences hold."""
        return sum(seq.computed_tokens for seq in self.running)

    @property
    def kv_usage(self) -> float:
        """Fraction of the KV cache in use, 0 to 1 (vLLM's ``kv_cache_usage_perc``)."""
        return min(1.0, self.kv_used_tokens / max(1, self.profile.kv_capacity_tokens))

    @property
    def idle(self) -> bool:
        """Whether nothing waits and nothing runs."""
        return not self.waiting and not self.running

    def add(self, seq: Sequence, now: float) -> None:
        """Queues a new sequence; raises :class:`EngineBusyError` when the queue is full.

        The limit counts sequences that will have to wait: those beyond the free slots.
        """
        limit = self.profile.max_waiting
        free_slots = max(0, self.profile.max_num_seqs - len(self.running))
        if limit is not None and len(self.waiting) >= limit + free_slots:
            raise EngineBusyError(
                "server busy, please try again.  maximum pending requests exceeded"
            )
        seq.arrived_at = now
        seq.state = SequenceState.WAITING
        if self.profile.priority_scheduling and seq.priority:
            # Behind every waiting sequence of the same or a lower value, ahead of the rest.
            at = next((i for i, w in enumerate(self.waiting) if w.priority > seq.priority), None)
            if at is not None:
                self.waiting.insert(at, seq)
                return
        self.waiting.append(seq)

    def abort(self, seq: Sequence, now: float) -> bool:
        """Drops a sequence wherever it is, freeing its slot and KV; False if it had ended."""
        if seq.done:
            return False
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        else:
            return False  # never queued
        seq.state = SequenceState.ABORTED
        seq.finished_at = now
        self.finished_total["abort"] += 1
        seq.notify()
        return True

    def plan(self, now: float) -> StepPlan | None:
        """Chooses the next step's work; ``None`` when there is nothing to compute."""
        self._preempt_for_growth()
        budget = self.profile.max_num_batched_tokens
        work: list[tuple[Sequence, int]] = []
        prefill = 0
        for seq in self.running:
            if budget <= 0:
                break
            tokens = min(seq.pending_tokens, budget)
            work.append((seq, tokens))
            prefill += 0 if seq.decoding else tokens
            budget -= tokens
        while budget > 0:
            admitted = self._admit_next(budget, now)
            if admitted is None:
                break
            work.append(admitted)
            prefill += admitted[1]
            budget -= admitted[1]
        if not work:
            return None
        streamed = sum(1 for seq, _ in work if seq.streaming)
        return StepPlan(tuple(work), prefill, self._duration(len(work), streamed, prefill))

    def complete(self, plan: StepPlan, now: float) -> list[Sequence]:
        """Applies a planned step; returns the sequences it advanced (finished ones included)."""
        advanced: list[Sequence] = []
        for seq, tokens in plan.work:
            if seq.state is not SequenceState.RUNNING:
                continue  # aborted or preempted while the step ran
            seq.computed_tokens += tokens
            if seq.pending_tokens > 0:
                continue  # a chunk of a longer prefill
            if seq.generated == 0 and seq.first_token_at is None:
                self.prefix_cache.insert(seq.block_hashes)
                seq.first_token_at = now
            seq.generated += 1
            self.generation_tokens_total += 1
            advanced.append(seq)
            if seq.generated >= seq.output_tokens:
                self._finish(seq, now)
        return advanced

    def _admit_next(self, budget: int, now: float) -> tuple[Sequence, int] | None:
        if not self.waiting or len(self.running) >= self.profile.max_num_seqs:
            return None
        seq = self.waiting[0]
        room = self.profile.kv_capacity_tokens - self.kv_used_tokens
        if room <= 0:
            return None
        self.waiting.popleft()
        if seq.admitted_at is None:
            seq.admitted_at = now
            self.prompt_tokens_total += seq.prompt_tokens
        seq.cached_tokens = self.prefix_cache.match(seq.block_hashes, seq.prompt_tokens)
        seq.computed_tokens = seq.cached_tokens
        seq.state = SequenceState.RUNNING
        self.running.append(seq)
        return seq, min(seq.pending_tokens, budget, room)

    def _preempt_for_growth(self) -> None:
        """Preempts the newest running sequences until every running one can grow by a token.

        vLLM's recompute preemption: the victim goes back to the head of the queue and, once
        readmitted, prefills its prompt and the tokens it had generated again.
        """
        capacity = self.profile.kv_capacity_tokens
        while len(self.running) > 1 and self.kv_used_tokens + len(self.running) > capacity:
            victim = self.running.pop()
            victim.state = SequenceState.WAITING
            victim.computed_tokens = 0
            self.waiting.appendleft(victim)
            self.preemptions_total += 1

    def _finish(self, seq: Sequence, now: float) -> None:
        self.running.remove(seq)
        seq.state = SequenceState.FINISHED
        seq.finished_at = now
        self.finished_total[seq.finish_reason] = self.finished_total.get(seq.finish_reason, 0) + 1

    def _duration(self, sequences: int, streamed: int, prefill_tokens: int) -> float:
        p = self.profile
        per_seq = p.per_seq_s * sequences + p.per_seq_sq_s * sequences * streamed
        return p.step_base_s + per_seq + p.per_prefill_token_s * prefill_tokens
