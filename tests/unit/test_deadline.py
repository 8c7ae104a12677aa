"""Deadline: one budget, read on an injected clock."""

from __future__ import annotations

import pytest

from consumer.deadline import Deadline

pytestmark = pytest.mark.timeout(10)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_shrinks_with_the_clock_and_never_below_the_floor() -> None:
    clock = Clock()
    deadline = Deadline.after(10, clock)
    clock.now += 4
    assert deadline.remaining() == 6
    clock.now += 10
    assert deadline.expired
    assert deadline.remaining() == 0
    assert deadline.remaining(floor=1.0) == 1.0


def test_a_revoke_during_a_shutdown_keeps_the_earlier_budget() -> None:
    clock = Clock()
    shutdown = Deadline.after(5, clock)
    assert Deadline.after(10, clock).earliest(shutdown) is shutdown
    assert Deadline.after(2, clock).earliest(shutdown).at == 102
    assert Deadline.after(2, clock).earliest(None).at == 102
