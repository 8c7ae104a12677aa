"""The continuous-batching model: its throughput curve, its limits and its asyncio step loop."""

from __future__ import annotations

import asyncio

import pytest

from evalstream_local.simulator.batch_planner import BatchPlanner, EngineBusyError
from evalstream_local.simulator.calibration import LoadPoint, closed_loop, make_prompt
from evalstream_local.simulator.profile import load_profile
from evalstream_local.simulator.scheduler import Scheduler
from evalstream_local.simulator.sequence import Sequence, SequenceState
from evalstream_local.simulator.tokens import block_hashes


def _seq(
    prompt_tokens: int = 100, output_tokens: int = 10, text: str = "", streaming: bool = False
) -> Sequence:
    hashes = block_hashes(text, 16) if text else ()
    out = "x" * 4 * output_tokens
    return Sequence(prompt_tokens, output_tokens, out, block_hashes=hashes, streaming=streaming)


LEVELS = (8, 16, 32, 64, 96, 128, 160, 256, 512, 1024)


@pytest.fixture(scope="module")
def vllm_curve() -> dict[int, LoadPoint]:
    """The vllm profile's closed-loop figures at each concurrency (2000 in, 200 out)."""
    profile = load_profile("vllm")
    return {c: closed_loop(profile, c, measured_requests=max(2 * c, 40)) for c in LEVELS}


def _relative(curve: dict[int, LoadPoint]) -> dict[int, float]:
    """Requests/s at each concurrency relative to 128 concurrent."""
    at_128 = curve[128].requests_per_s
    return {c: point.requests_per_s / at_128 for c, point in curve.items()}


@pytest.mark.timeout(60)
def test_throughput_peaks_between_64_and_160_concurrent(vllm_curve: dict[int, LoadPoint]) -> None:
    peak = max(vllm_curve, key=lambda c: vllm_curve[c].requests_per_s)
    assert 64 <= peak <= 160
    # GPU.md: 36.8 req/s at 128 concurrent with --max-num-batched-tokens 16384.
    assert 36.0 <= vllm_curve[peak].requests_per_s <= 40.0
    rates = [vllm_curve[c].requests_per_s for c in LEVELS if c <= 96]
    assert rates == sorted(rates)


@pytest.mark.timeout(60)
def test_eight_concurrent_get_about_a_third_of_the_peak(vllm_curve: dict[int, LoadPoint]) -> None:
    relative = _relative(vllm_curve)
    assert 0.28 <= relative[8] <= 0.35
    assert 0.88 <= relative[64] <= 0.97
    # GPU.md: 11.0 req/s at 8 concurrent.
    assert 9.0 <= vllm_curve[8].requests_per_s <= 13.0


@pytest.mark.timeout(60)
def test_throughput_declines_past_the_peak(vllm_curve: dict[int, LoadPoint]) -> None:
    relative = _relative(vllm_curve)
    assert 0.90 <= relative[256] <= 0.97
    assert 0.75 <= relative[1024] <= 0.88
    assert relative[160] > relative[256] > relative[512]
    # GPU.md: 29.5 req/s at 1024 concurrent.
    assert 26.0 <= vllm_curve[1024].requests_per_s <= 34.0


@pytest.mark.timeout(60)
def test_more_concurrency_past_the_peak_adds_latency_and_queueing(
    vllm_curve: dict[int, LoadPoint],
) -> None:
    assert vllm_curve[512].mean_latency_s > 3 * vllm_curve[128].mean_latency_s
    assert vllm_curve[128].mean_ttft_s < 1.0
    # Past max_num_seqs requests wait for a slot: GPU.md's 13 s median TTFT at 1024.
    assert 8.0 <= vllm_curve[1024].mean_ttft_s <= 25.0


@pytest.fixture(scope="module")
def vllm_curve_not_streamed() -> dict[int, LoadPoint]:
    """The same, clients waiting for whole answers (the worker, ``direct.py``)."""
    profile = load_profile("vllm")
    return {
        c: closed_loop(profile, c, measured_requests=max(2 * c, 40), streaming=False)
        for c in LEVELS
    }


@pytest.mark.timeout(60)
def test_without_streaming_throughput_rises_up_to_the_slot_limit(
    vllm_curve_not_streamed: dict[int, LoadPoint],
) -> None:
    relative = _relative(vllm_curve_not_streamed)
    # Run 3 on one H200, our client without streaming: 0.35 at 8, 1.10 at 256, 1.18 at 512
    # relative to 128; 11.7 s median latency at 512.
    assert 0.25 <= relative[8] <= 0.38
    assert 1.04 <= relative[256] <= 1.15
    assert 1.08 <= relative[512] <= 1.25
    rates = [vllm_curve_not_streamed[c].requests_per_s for c in LEVELS if c <= 512]
    assert rates == sorted(rates)
    assert 8.0 <= vllm_curve_not_streamed[512].mean_latency_s <= 14.0
    # Past max_num_seqs (512) requests only queue.
    assert relative[1024] == pytest.approx(relative[512], rel=0.05)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("streaming", [True, False])
def test_the_step_cost_grows_with_the_square_of_the_streamed_batch(streaming: bool) -> None:
    profile = load_profile("vllm", prefix_caching=False)
    durations = {}
    for n in (1, 100, 200):
        planner = BatchPlanner(profile)
        for _ in range(n):
            planner.add(_seq(prompt_tokens=1, output_tokens=5, streaming=streaming), 0.0)
        plan = planner.plan(0.0)
        assert plan is not None
        assert plan.prefill_tokens == n
        expected = (
            profile.step_base_s
            + profile.per_seq_s * n
            + profile.per_seq_sq_s * n * (n if streaming else 0)
            + profile.per_prefill_token_s * n
        )
        assert plan.duration_s == pytest.approx(expected)
        durations[n] = plan.duration_s
    first, second = (durations[100] - durations[1]) / 99, (durations[200] - durations[100]) / 100
    if streaming:
        assert second > 1.2 * first
    else:
        assert second == pytest.approx(first)


def test_only_the_vllm_profile_has_a_square_term() -> None:
    assert load_profile("vllm").per_seq_sq_s > 0
    assert load_profile("ollama").per_seq_sq_s == 0
    assert load_profile("instant").per_seq_sq_s == 0


@pytest.mark.timeout(60)
def test_a_shared_prefix_is_cheaper_through_the_prefix_cache() -> None:
    profile = load_profile("vllm", max_num_batched_tokens=16384)
    plain = closed_loop(profile, 128, measured_requests=256)
    shared = closed_loop(profile, 128, shared_prefix_tokens=600, measured_requests=256)
    # GPU.md: 36.8 -> 40.1 req/s with a 600-token prefix shared by all prompts.
    assert 1.04 <= shared.requests_per_s / plain.requests_per_s <= 1.25


@pytest.mark.timeout(30)
def test_steps_respect_the_slot_and_token_budgets() -> None:
    profile = load_profile("vllm", max_num_seqs=8, max_num_batched_tokens=512)
    planner = BatchPlanner(profile)
    for i in range(20):
        planner.add(_seq(prompt_tokens=300, output_tokens=5, text=make_prompt(i, 300)), 0.0)
    now, finished = 0.0, 0
    while (plan := planner.plan(now)) is not None:
        assert len(plan.work) <= 8
        assert sum(tokens for _, tokens in plan.work) <= 512
        assert len(planner.running) <= 8
        now += plan.duration_s
        finished += sum(1 for s in planner.complete(plan, now) if s.done)
    assert finished == 20


@pytest.mark.timeout(30)
def test_a_long_prompt_is_prefilled_in_chunks_while_others_decode() -> None:
    planner = BatchPlanner(load_profile("vllm", max_num_batched_tokens=1000))
    short, long = _seq(prompt_tokens=10, output_tokens=50), _seq(prompt_tokens=4500)
    planner.add(short, 0.0)
    plan = planner.plan(0.0)
    assert plan is not None
    planner.complete(plan, 1.0)
    planner.add(long, 1.0)
    chunks = []
    while long.generated == 0:
        plan = planner.plan(2.0)
        assert plan is not None
        chunks.append({s.seq_id: n for s, n in plan.work}[long.seq_id])
        planner.complete(plan, 2.0)
    assert sum(chunks) == 4500
    assert len(chunks) == 5
    assert short.generated == 1 + len(chunks)


@pytest.mark.timeout(30)
def test_a_full_kv_cache_preempts_and_everything_still_finishes() -> None:
    profile = load_profile("vllm", kv_capacity_tokens=1200, prefix_caching=False)
    planner = BatchPlanner(profile)
    sequences = [_seq(prompt_tokens=300, output_tokens=200) for _ in range(6)]
    for seq in sequences:
        planner.add(seq, 0.0)
    now = 0.0
    while (plan := planner.plan(now)) is not None:
        assert planner.kv_used_tokens <= 1200
        now += plan.duration_s
        planner.complete(plan, now)
    assert planner.preemptions_total > 0
    assert all(s.state is SequenceState.FINISHED and s.generated == 200 for s in sequences)


@pytest.mark.timeout(30)
def test_the_prefix_cache_serves_a_repeated_prompt() -> None:
    planner = BatchPlanner(load_profile("vllm"))
    text = make_prompt(1, 500)
    first, second = _seq(500, 2, text), _seq(500, 2, text)
    planner.add(first, 0.0)
    while (plan := planner.plan(0.0)) is not None:
        planner.complete(plan, 0.0)
    planner.add(second, 0.0)
    plan = planner.plan(0.0)
    assert plan is not None
    assert second.cached_tokens == 496  # 31 full blocks of 16; the tail is recomputed
    assert plan.prefill_tokens == 4


@pytest.mark.timeout(30)
def test_ollama_runs_num_parallel_at_once_and_refuses_past_max_queue() -> None:
    planner = BatchPlanner(load_profile("ollama", num_parallel=4, max_queue=512))
    for _ in range(4):
        planner.add(_seq(), 0.0)
    plan = planner.plan(0.0)
    assert plan is not None
    assert len(planner.running) == 4
    for _ in range(512):
        planner.add(_seq(), 0.0)
    with pytest.raises(EngineBusyError, match="maximum pending requests exceeded"):
        planner.add(_seq(), 0.0)
    assert len(planner.running) == 4
    assert len(planner.waiting) == 512


@pytest.mark.timeout(30)
def test_ollama_slots_serve_one_request_each_at_a_per_token_rate() -> None:
    profile = load_profile("ollama", num_parallel=2)
    one = closed_loop(profile, 1, prompt_tokens=200, output_tokens=100, measured_requests=5)
    many = closed_loop(profile, 8, prompt_tokens=200, output_tokens=100, measured_requests=16)
    assert 60 <= one.output_tokens_per_s <= 100  # about 80 tok/s for a single stream
    assert many.requests_per_s < 2.2 * one.requests_per_s  # only two slots


@pytest.mark.timeout(30)
async def test_the_step_loop_runs_in_scaled_time_and_reports_progress() -> None:
    scheduler = Scheduler(load_profile("vllm", time_scale=100))
    await scheduler.start()
    try:
        seq = _seq(prompt_tokens=200, output_tokens=30)
        scheduler.submit(seq)
        counts = [count async for count in scheduler.progress(seq)]
        assert counts == sorted(counts)
        assert counts[-1] == 30
        assert seq.state is SequenceState.FINISHED
        gauges = scheduler.gauges()
        assert gauges.generation_tokens_total == 30
        assert gauges.running == 0
        assert gauges.finished_total["stop"] == 1
    finally:
        await scheduler.stop()


@pytest.mark.timeout(30)
async def test_an_aborted_sequence_leaves_the_batch_at_once() -> None:
    scheduler = Scheduler(load_profile("vllm", time_scale=100))
    await scheduler.start()
    try:
        seq, other = _seq(output_tokens=100_000), _seq(output_tokens=20)
        scheduler.submit(seq)
        scheduler.submit(other)
        waiter = asyncio.create_task(scheduler.wait(seq))
        async for count in scheduler.progress(seq):
            if count >= 3:
                break
        assert scheduler.gauges().running == 2
        assert scheduler.abort(seq)
        await waiter
        assert seq.state is SequenceState.ABORTED
        assert scheduler.gauges().running == 1
        await scheduler.wait(other)
        assert other.state is SequenceState.FINISHED
        assert scheduler.gauges().finished_total["abort"] == 1
    finally:
        await scheduler.stop()


@pytest.mark.timeout(30)
async def test_the_instant_profile_finishes_on_submit() -> None:
    scheduler = Scheduler(load_profile("instant"))
    await scheduler.start()
    seq = _seq(prompt_tokens=10, output_tokens=7)
    scheduler.submit(seq)
    assert seq.state is SequenceState.FINISHED
    assert seq.generated == 7
    assert [c async for c in scheduler.progress(seq)] == [7]
    await scheduler.stop()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("priority_scheduling", [False, True])
def test_priority_scheduling_admits_lower_priorities_first(priority_scheduling: bool) -> None:
    profile = load_profile("vllm", max_num_seqs=2, priority_scheduling=priority_scheduling)
    planner = BatchPlanner(profile)
    bulk = [_seq(text=make_prompt(i, 100)) for i in range(6)]
    urgent = _seq(text=make_prompt(99, 100))
    urgent.priority = -1
    for seq in [*bulk, urgent]:
        planner.add(seq, 0.0)

    planner.plan(0.0)  # admits two: the urgent one first when priorities count

    admitted = list(planner.running)
    if priority_scheduling:
        assert admitted == [urgent, bulk[0]]
        assert list(planner.waiting) == bulk[1:]  # equal priorities keep arrival order
    else:
        assert admitted == bulk[:2]
        assert planner.waiting[-1] is urgent
