"""AdaptiveWindowPolicy against throughput curves shaped like real engines."""

from __future__ import annotations

import math
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
