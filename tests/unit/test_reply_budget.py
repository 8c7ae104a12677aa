"""The reply's length bound, derived from a JSON schema's bounds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumer.prompts import evaluation_schema
from consumer.reply_budget import reply_token_bound, schema_char_bound
from consumer.schemas import MAX_POINTS, POINT_CHARS, SUMMARY_CHARS, Evaluation

pytestmark = pytest.mark.timeout(10)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def test_the_bound_is_the_longest_evaluation_exactly() -> None:
    longest = Evaluation.model_validate(
        {
            "score": 100,
            "recommendation": "strong_yes",
            "strengths": ["s" * POINT_CHARS] * MAX_POINTS,
            "concerns": ["c" * POINT_CHARS] * MAX_POINTS,
            "summary": "x" * SUMMARY_CHARS,
        }
    )
    text = compact(longest.model_dump(mode="json"))
    assert schema_char_bound(evaluation_schema()) == len(text)


def test_token_bound_leaves_a_margin_over_the_characters() -> None:
    schema = evaluation_schema()
    chars = schema_char_bound(schema)
    tokens = reply_token_bound(schema)
    assert chars is not None
    assert tokens is not None
    assert chars < tokens <= chars + 32


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "integer", "minimum": -5, "maximum": 100}, 3),
        ({"enum": ["a", "bbb"]}, 5),
        ({"type": "array", "maxItems": 0, "items": {"type": "string"}}, 2),
        ({"type": "array", "maxItems": 2, "items": {"type": "boolean"}}, 2 + 5 + 1 + 5),
        ({"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 9}]}, 11),
        ({"type": "object", "properties": {"a": {"const": 1}}}, len('{"a":1}')),
    ],
)
def test_each_kind_of_node(schema: dict[str, Any], expected: int) -> None:
    assert schema_char_bound(schema) == expected


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string"},
        {"type": "array", "items": {"type": "integer"}},
        {"type": "object", "properties": {}, "additionalProperties": True},
        {"type": "object", "properties": {"a": {"type": "string"}}},
    ],
)
def test_unbounded_schemas_have_no_bound(schema: dict[str, Any]) -> None:
    assert schema_char_bound(schema) is None
    assert reply_token_bound(schema) is None
