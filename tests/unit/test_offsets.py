"""PartitionOffsets: the committable offset under any completion order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.offsets import PartitionOffsets

pytestmark = pytest.mark.timeout(60)


def reference_committable(tracked: list[int], done: set[int]) -> int | None:
    """The definition: the lowest tracked offset not done, else one past the highest."""
    incomplete = [o for o in tracked if o not in done]
    if incomplete:
        return min(incomplete)
    return tracked[-1] + 1 if tracked else None


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """Increasing offsets (with gaps, as compaction and transactions leave) and a
    completion order that is a permutation of a subset of them."""
    start = draw(st.integers(0, 10_000))
    gaps = draw(st.lists(st.integers(1, 5), min_size=0, max_size=60))
    tracked = [start]
    for gap in gaps:
        tracked.append(tracked[-1] + gap)
    completed = draw(st.permutations(tracked))
    cut = draw(st.integers(0, len(completed)))
    return tracked, list(completed[:cut])


@given(runs())
def test_committable_matches_definition_for_any_order(run: tuple[list[int], list[int]]) -> None:
    tracked, completions = run
    offsets = PartitionOffsets()
    for offset in tracked:
        offsets.track(offset)
    done: set[int] = set()
    for offset in completions:
        offsets.complete(offset)
        done.add(offset)
        assert offsets.committable() == reference_committable(tracked, done)
        assert offsets.incomplete == len(tracked) - len(done)


@given(runs())
def test_commits_never_go_backwards_and_only_when_changed(run: tuple[list[int], list[int]]) -> None:
    tracked, completions = run
    offsets = PartitionOffsets()
    for offset in tracked:
        offsets.track(offset)
    committed: list[int] = []
    first = offsets.take_commit()
    if first is not None:
        committed.append(first)
    for offset in completions:
        offsets.complete(offset)
        taken = offsets.take_commit()
        if taken is not None:
            committed.append(taken)
    assert committed == sorted(set(committed))


def test_interleaved_tracking_and_completion() -> None:
    offsets = PartitionOffsets()
    offsets.track(5)
    offsets.track(6)
    offsets.complete(6)
    assert offsets.committable() == 5
    offsets.track(7)
    offsets.complete(5)
    assert offsets.committable() == 7
    offsets.complete(7)
    assert offsets.committable() == 8
    assert offsets.incomplete == 0


def test_refuses_an_offset_that_goes_backwards() -> None:
    offsets = PartitionOffsets()
    offsets.track(10)
    with pytest.raises(ValueError, match="offset 9 tracked after 10"):
        offsets.track(9)


def test_failed_commit_is_offered_again_after_reset() -> None:
    offsets = PartitionOffsets()
    offsets.track(0)
    offsets.complete(0)
    assert offsets.take_commit() == 1
    assert offsets.take_commit() is None
    offsets.reset_commit()
    assert offsets.take_commit() == 1
