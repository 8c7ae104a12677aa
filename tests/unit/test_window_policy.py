"""AdaptiveWindowPolicy against throughput curves shaped like real engines."""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable

import pytest

from consumer.window_policy import AdaptiveWindowPolicy, FixedWindowPolicy, WindowSample

pytestmark = pytest.mark.timeout(30)


def vllm_like(window: int) -> float:
    """Rises to a plateau near 37 req/s around 96-128 in flight (the H200 shape)."""
    return 37.0 * (1 - math.exp(-window / 40))


def settle(
    policy: AdaptiveWindowPolicy, curve: Callable[[int], float], start: int, steps: int
) -> list[int]:
    limit, limits = start, []
    for _ in range(steps):
        limit = policy.next_limit(
            WindowSample(limit, curve(limit), mean_in_flight=limit, overloaded=False)
        )
        limits.append(limit)
    return limits


def test_climbs_to_the_plateau_and_stays_near_it() -> None:
    policy = AdaptiveWindowPolicy(start=8, minimum=1, maximum=1024)
    limits = settle(policy, vllm_like, 8, 60)
    best = vllm_like(1024)
    late = limits[20:]
    assert min(vllm_like(x) for x in late) >= 0.9 * best  # probes included
    assert sum(vllm_like(x) for x in late) / len(late) >= 0.95 * best
    assert max(late) <= 400  # no runaway into pure queueing


def test_backs_off_multiplicatively_on_overload() -> None:
    policy = AdaptiveWindowPolicy(start=64, minimum=4, maximum=512)
    limit = policy.next_limit(WindowSample(64, 10.0, mean_in_flight=64, overloaded=True))
    assert limit == 48
    limit = policy.next_limit(WindowSample(limit, 10.0, mean_in_flight=limit, overloaded=True))
    assert limit == 36


def test_holds_when_demand_does_not_fill_the_window() -> None:
    policy = AdaptiveWindowPolicy(start=64, minimum=4, maximum=512)
    for _ in range(20):
        assert policy.next_limit(WindowSample(64, 5.0, mean_in_flight=3, overloaded=False)) == 64


def test_respects_bounds() -> None:
    policy = AdaptiveWindowPolicy(start=2, minimum=2, maximum=16)
    limits = settle(policy, lambda w: float(w), 2, 40)  # throughput grows forever
    assert max(limits) == 16
    assert min(limits) >= 2


def test_fixed_policy_never_moves() -> None:
    policy = FixedWindowPolicy(8)
    assert policy.next_limit(WindowSample(8, 1.0, 8, overloaded=True)) == 8


def ollama_like(window: int) -> float:
    """Four slots: flat from 4 in flight on, more only queues (Ollama's parallel slots)."""
    return 28.0 * min(window, 4) / 4


def test_descends_a_flat_curve_to_its_knee() -> None:
    policy = AdaptiveWindowPolicy(start=32, minimum=1, maximum=512)
    limits = settle(policy, ollama_like, 32, 60)
    late = limits[30:]
    assert max(late) <= 6  # not 32: the latency of queued requests bought nothing
    assert min(ollama_like(x) for x in late) >= 0.75 * 28.0  # probes included
    assert sum(ollama_like(x) for x in late) / len(late) >= 0.95 * 28.0


def vllm_not_streamed(window: int) -> float:
    """vLLM answering whole replies (the worker's calls): it gains up to its 512 slots.

    The simulator's closed-loop figures, which match BENCHMARKS §1 run 3 (relative to 128:
    1.09 at 256, 1.13 at 512), interpolated on log2 of the window; flat past 512.
    """
    points = {8: 12.2, 64: 36.5, 128: 42.6, 256: 46.3, 512: 48.1}
    window = max(8, min(512, window))
    lower = max(p for p in points if p <= window)
    upper = min(p for p in points if p >= window)
    if lower == upper:
        return points[lower]
    share = math.log2(window / lower) / math.log2(upper / lower)
    return points[lower] + share * (points[upper] - points[lower])


def test_climbs_a_curve_that_still_gains_4_percent_per_doubling_to_the_top() -> None:
    # Steps of x1.5 gain under 3% past 256 (46.3 -> 47.3 at 384) and the climb stopped
    # there; doubling gains 3.9% (46.3 -> 48.1 at 512).
    policy = AdaptiveWindowPolicy(start=32, minimum=4, maximum=512)
    limits = settle(policy, vllm_not_streamed, 32, 40)
    late = limits[10:]
    assert sum(vllm_not_streamed(x) for x in late) / len(late) >= 0.98 * 48.1
    assert sorted(late)[len(late) // 2] == 512


def test_noise_of_two_percent_does_not_walk_the_window_down_the_curve() -> None:
    # Samples read 2% high or low at random (a sample's target precision is 1.5%): the
    # window wanders where the curve is flattest but does not drift to its foot.
    shares = []
    for seed in range(10):
        rng = random.Random(seed)
        policy = AdaptiveWindowPolicy(start=32, minimum=4, maximum=512)
        noisy = functools.partial(lambda r, w: vllm_not_streamed(w) * r.gauss(1, 0.02), rng)
        limits = settle(policy, noisy, 32, 80)
        late = limits[20:]
        shares.append(sum(vllm_not_streamed(x) for x in late) / len(late) / 48.1)
    assert sum(shares) / len(shares) >= 0.95
    assert min(shares) >= 0.85
