"""Closed-loop load on the step model in virtual time: how a profile's parameters were chosen.

:func:`closed_loop` keeps ``concurrency`` requests in the :class:`BatchPlanner` at all times (a new
one arrives the moment one finishes, as ``vllm bench serve --max-concurrency`` does) and adds up
step durations instead of sleeping, so a sweep over a profile takes milliseconds of CPU per
thousand steps. The unit tests check the shape of the curve with it; ``benchmarks/sim_shape.py``
measures the same curve through the real HTTP server.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from evalstream_local.simulator.batch_planner import BatchPlanner
from evalstream_local.simulator.profile import SimulatorProfile
from evalstream_local.simulator.sequence import Sequence
from evalstream_local.simulator.tokens import CHARS_PER_TOKEN, block_hashes


@dataclass(frozen=True)
class LoadPoint:
    """Steady-state figures of one closed-loop run, in simulated seconds.

    Attributes:
        concurrency: Requests kept in flight.
        requests_per_s: Completed requests per second.
        output_tokens_per_s: Generated tokens per second.
        mean_latency_s: Mean end-to-end latency.
        mean_ttft_s: Mean time to first token.
        steps: Steps simulated.
    """

    concurrency: int
    requests_per_s: float
    output_tokens_per_s: float
    mean_latency_s: float
    mean_ttft_s: float
    steps: int


def make_prompt(index: int, prompt_tokens: int, shared_prefix_tokens: int = 0) -> str:
    """Builds a prompt of ``prompt_tokens`` tokens, the first ``shared_prefix_tokens`` shared."""
    shared = ("job description and rubric. " * prompt_tokens)[
        : shared_prefix_tokens * CHARS_PER_TOKEN
    ]
    unique = f"candidate {index:08d} " * prompt_tokens
    return (shared + unique)[: prompt_tokens * CHARS_PER_TOKEN]


def closed_loop(
    profile: SimulatorProfile,
    concurrency: int,
    *,
    prompt_tokens: int = 2000,
    output_tokens: int = 200,
    shared_prefix_tokens: int = 0,
    measured_requests: int | None = None,
    streaming: bool = True,
) -> LoadPoint:
    """Runs ``concurrency`` closed-loop clients in virtual time and measures the steady state.

    The first ``concurrency`` completions warm the engine up and are not counted; then
    ``measured_requests`` (default ``max(3 * concurrency, 60)``) completions are timed.
    ``streaming`` clients follow every token (``vllm bench serve``); the worker does not.
    """
    planner = BatchPlanner(profile)
    measured = measured_requests or max(3 * concurrency, 60)
    now = 0.0
    issued = 0

    def submit() -> None:
        nonlocal issued
        text = make_prompt(issued, prompt_tokens, shared_prefix_tokens)
        hashes = block_hashes(text, profile.block_tokens)
        seq = Sequence(prompt_tokens, output_tokens, "", block_hashes=hashes, streaming=streaming)
        planner.add(seq, now)
        issued += 1

    for _ in range(concurrency):
        submit()
    done: list[Sequence] = []
    steps = 0
    start = 0.0
    while len(done) < concurrency + measured:
        plan = planner.plan(now)
        if plan is None:
            break
        now += plan.duration_s
        steps += 1
        for seq in planner.complete(plan, now):
            if seq.done:
                done.append(seq)
                if len(done) == concurrency:
                    start = now
                submit()
    timed = done[concurrency:]
    elapsed = max(now - start, 1e-12)
    return LoadPoint(
        concurrency=concurrency,
        requests_per_s=len(timed) / elapsed,
        output_tokens_per_s=len(timed) * output_tokens / elapsed,
        mean_latency_s=statistics.fmean(_latency(s) for s in timed),
        mean_ttft_s=statistics.fmean(_ttft(s) for s in timed),
        steps=steps,
    )


def _latency(seq: Sequence) -> float:
    return (seq.finished_at or 0.0) - seq.arrived_at


def _ttft(seq: Sequence) -> float:
    return (seq.first_token_at or 0.0) - seq.arrived_at
