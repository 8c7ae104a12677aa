"""The failure table: one action per (stage, error), and the engine-call policy built on it."""

from __future__ import annotations

import pytest

from consumer.errors import (
    CommitError,
    DeadlineExpired,
    DecodeError,
    EngineOverloaded,
    EngineRejected,
    EngineUnavailable,
    EvalstreamError,
    InvalidOutput,
    MessageTooLarge,
    RoutingError,
    SinkError,
    SinkFatal,
    SourceError,
    TruncatedOutput,
)
from consumer.failure_table import (
    EngineCircuit,
    FailurePolicy,
    RetryState,
    caused_by_input,
    rule,
)
from consumer.settings import RetrySettings

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("stage", "error", "action"),
    [
        ("intake", DecodeError("x"), "dead_letter"),
        ("intake", RoutingError("x"), "dead_letter"),
        ("engine", EngineUnavailable("x"), "retry"),
        ("engine", EngineOverloaded("x"), "retry"),
        ("engine", EngineRejected("x"), "dead_letter"),
        ("reply", InvalidOutput("x"), "repair"),
        ("reply", TruncatedOutput("x"), "error_result"),
        ("reply", DeadlineExpired("x"), "error_result"),
        ("evaluation", EvalstreamError("x"), "dead_letter"),
        ("publish", SinkError("x"), "retry"),
        ("publish", MessageTooLarge("x"), "dead_letter"),
        ("publish", SinkFatal("x"), "stop"),
        ("worker", SourceError("x"), "stop"),
        ("worker", CommitError("x"), "stop"),
    ],
)
def test_each_stage_and_error_has_one_action(
    stage: str, error: EvalstreamError, action: str
) -> None:
    assert rule(stage, error).action == action  # type: ignore[arg-type]


def test_an_error_a_stage_does_not_list_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        rule("publish", DecodeError("x"))


def test_only_bad_input_is_the_inputs_fault() -> None:
    assert caused_by_input(DecodeError("x"))
    assert caused_by_input(RoutingError("x"))
    assert not caused_by_input(EngineRejected("x"))
    assert not caused_by_input(None)


def policy(max_attempts: int = 3, threshold: int = 2) -> tuple[FailurePolicy, EngineCircuit]:
    circuit = EngineCircuit(threshold)
    settings = RetrySettings(max_attempts=max_attempts, backoff_initial_s=0.5, backoff_max_s=1)
    return FailurePolicy(settings, circuit), circuit


def test_a_bad_reply_is_repaired_once_then_an_error_result() -> None:
    decide, _circuit = policy()
    state = RetryState()
    assert decide.decide(InvalidOutput("x"), state, repairable=True).action == "repair"
    assert decide.decide(InvalidOutput("x"), state, repairable=True).action == "error_result"
    unrepairable = RetryState()
    assert decide.decide(InvalidOutput("x"), unrepairable, repairable=False).action == (
        "error_result"
    )
    assert decide.decide(TruncatedOutput("x"), RetryState(), repairable=True).action == (
        "error_result"
    )


def test_retries_are_counted_up_to_the_cap_then_dead_lettered() -> None:
    decide, _circuit = policy(max_attempts=3, threshold=100)
    state = RetryState()
    error = EngineUnavailable("500", reason="server_error")
    first = decide.decide(error, state, repairable=False)
    second = decide.decide(error, state, repairable=False)
    third = decide.decide(error, state, repairable=False)
    assert [first.action, second.action, third.action] == ["retry", "retry", "dead_letter"]
    assert third.reason == "retries_exhausted:server_error"
    assert 0 <= first.delay_s <= 0.5  # full jitter under the first step


def test_overload_is_retried_without_counting() -> None:
    decide, _circuit = policy(max_attempts=1)
    state = RetryState()
    for _ in range(5):
        decision = decide.decide(EngineOverloaded("429"), state, repairable=False)
        assert (decision.action, decision.counts) == ("retry", False)


def test_an_engine_that_is_down_opens_the_circuit_and_nothing_counts() -> None:
    decide, circuit = policy(max_attempts=1, threshold=2)
    state = RetryState()
    down = EngineUnavailable("refused", reason="connect")
    decide.decide(down, state, repairable=False)
    decision = decide.decide(down, state, repairable=False)
    assert circuit.is_open
    assert (decision.action, decision.counts) == ("retry", False)


def test_a_refusal_is_dead_lettered_with_its_reason() -> None:
    decide, _circuit = policy()
    refused = EngineRejected("too long", reason="context_length")
    decision = decide.decide(refused, RetryState(), repairable=False)
    assert (decision.action, decision.reason) == ("dead_letter", "context_length")
