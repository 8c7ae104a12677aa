"""Backoff: the delays, waiting on a probe, retrying an action."""

from __future__ import annotations

import pytest

from consumer.backoff import Backoff

pytestmark = pytest.mark.timeout(10)

FAST = Backoff(initial_s=0.001, max_s=0.004)


def test_delays_double_up_to_the_cap() -> None:
    assert [FAST.delay(n) for n in range(1, 6)] == [0.001, 0.002, 0.004, 0.004, 0.004]


def test_full_jitter_stays_below_the_delay() -> None:
    jittered = Backoff(initial_s=1.0, max_s=4.0, jitter=True)
    draws = [jittered.delay(3) for _ in range(200)]
    assert all(0 <= d <= 4.0 for d in draws)
    assert len(set(draws)) > 1


async def test_until_probes_until_true_and_reports_each_wait() -> None:
    answers = iter([False, False, True])
    waits: list[int] = []

    async def probe() -> bool:
        return next(answers)

    await FAST.until(probe, waits.append)
    assert waits == [1, 2]


async def test_retry_retries_the_named_errors_and_returns_the_result() -> None:
    calls: list[float] = []

    async def action() -> str:
        if len(calls) < 2:
            raise ConnectionError("down")
        return "done"

    result = await FAST.retry(action, OSError, on_retry=lambda _e, delay: calls.append(delay))
    assert result == "done"
    assert calls == [0.001, 0.002]


async def test_retry_raises_other_errors_and_give_up_errors_at_once() -> None:
    class Final(ConnectionError):
        pass

    async def final() -> None:
        raise Final("too large")

    async def other() -> None:
        raise ValueError("bug")

    with pytest.raises(Final):
        await FAST.retry(final, ConnectionError, give_up_on=Final)
    with pytest.raises(ValueError, match="bug"):
        await FAST.retry(other, ConnectionError)
