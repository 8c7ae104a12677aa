"""Documents from ``FakeJson`` validate against the schemas they were generated for, the
evaluation contract (`consumer.schemas.Evaluation`) first."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.schemas import Evaluation
from evalstream_local.simulator.fakejson import JSON_OBJECT_SCHEMA, FakeJson, corrupt, fake_text
from evalstream_local.simulator.tokens import count_tokens


def errors(doc: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> list[str]:
    """A small JSON Schema validator for the keywords FakeJson supports."""
    root = root if root is not None else schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        return errors(doc, target, root)
    if "const" in schema and doc != schema["const"]:
        return [f"{doc!r} != const {schema['const']!r}"]
    if "enum" in schema and doc not in schema["enum"]:
        return [f"{doc!r} not in enum"]
    if "anyOf" in schema:
        if all(errors(doc, branch, root) for branch in schema["anyOf"]):
            return [f"{doc!r} matches no anyOf branch"]
        return []
    kind = schema.get("type")
    if kind is not None and not _has_type(doc, kind):
        return [f"{doc!r} is not of type {kind}"]
    return _keyword_errors(doc, schema, root)


def _has_type(doc: Any, kind: str) -> bool:
    checks = {
        "object": lambda: isinstance(doc, dict),
        "array": lambda: isinstance(doc, list),
        "string": lambda: isinstance(doc, str),
        "integer": lambda: isinstance(doc, int) and not isinstance(doc, bool),
        "number": lambda: isinstance(doc, int | float) and not isinstance(doc, bool),
        "boolean": lambda: isinstance(doc, bool),
        "null": lambda: doc is None,
    }
    return checks[kind]()


def _upper(schema: dict[str, Any], key: str) -> float:
    return float(schema.get(key, float("inf")))


def _is_number(doc: Any) -> bool:
    return isinstance(doc, int | float) and not isinstance(doc, bool)


def _keyword_errors(doc: Any, schema: dict[str, Any], root: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if isinstance(doc, str) and not schema.get("minLength", 0) <= len(doc) <= _upper(
        schema, "maxLength"
    ):
        found.append(f"string length {len(doc)} out of bounds")
    if _is_number(doc) and not schema.get("minimum", -float("inf")) <= doc <= _upper(
        schema, "maximum"
    ):
        found.append(f"{doc} out of bounds")
    if isinstance(doc, list):
        if len(doc) < schema.get("minItems", 0) or len(doc) > schema.get("maxItems", 1 << 30):
            found.append(f"{len(doc)} items out of bounds")
        for item in doc:
            found += errors(item, schema.get("items", {}), root)
    if isinstance(doc, dict):
        found += [f"missing {k}" for k in schema.get("required", []) if k not in doc]
        properties = schema.get("properties", {})
        found += [f"unexpected {k}" for k in doc if properties and k not in properties]
        for key, value in doc.items():
            if key in properties:
                found += errors(value, properties[key], root)
    return found


@st.composite
def scalar_schemas(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["string", "integer", "number", "boolean", "enum", "const"]))
    if kind == "string":
        low = draw(st.integers(0, 20))
        return {"type": "string", "minLength": low, "maxLength": low + draw(st.integers(0, 80))}
    if kind in ("integer", "number"):
        low = draw(st.integers(-1000, 1000))
        return {"type": kind, "minimum": low, "maximum": low + draw(st.integers(0, 500))}
    values = st.one_of(st.integers(-5, 5), st.text(max_size=6), st.booleans(), st.none())
    if kind == "enum":
        return {"enum": draw(st.lists(values, min_size=1, max_size=4, unique_by=repr))}
    if kind == "const":
        return {"const": draw(values)}
    return {"type": "boolean"}


def composite_schemas(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    names = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)

    @st.composite
    def objects(draw: st.DrawFn) -> dict[str, Any]:
        properties = draw(st.dictionaries(names, children, max_size=5))
        required = [k for k in properties if draw(st.booleans())]
        return {"type": "object", "properties": properties, "required": required}

    @st.composite
    def arrays(draw: st.DrawFn) -> dict[str, Any]:
        low = draw(st.integers(0, 3))
        items = draw(children)
        return {"type": "array", "items": items, "minItems": low, "maxItems": low + 3}

    any_of = st.lists(children, min_size=1, max_size=3).map(lambda b: {"anyOf": b})
    return st.one_of(objects(), arrays(), any_of)


schemas = st.recursive(scalar_schemas(), composite_schemas, max_leaves=12)


@pytest.mark.timeout(120)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=schemas, seed=st.integers(0, 2**32))
def test_documents_validate_against_generated_schemas(schema: dict[str, Any], seed: int) -> None:
    doc = FakeJson(schema, seed).document()
    assert errors(doc, schema) == []


@pytest.mark.timeout(120)
@settings(max_examples=60, deadline=None)
@given(definition=schemas, seed=st.integers(0, 2**32))
def test_refs_into_defs_are_followed(definition: dict[str, Any], seed: int) -> None:
    schema = {
        "$defs": {"Item": definition},
        "type": "object",
        "properties": {
            "item": {"$ref": "#/$defs/Item"},
            "many": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        },
        "required": ["item", "many"],
    }
    assert errors(FakeJson(schema, seed).document(), schema) == []


@pytest.mark.timeout(60)
@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**63))
def test_evaluation_documents_parse_as_the_contract(seed: int) -> None:
    schema = Evaluation.model_json_schema()
    text = FakeJson(schema, seed).text()
    evaluation = Evaluation.model_validate_json(text)
    assert 0 <= evaluation.score <= 100
    assert errors(json.loads(text), schema) == []


@pytest.mark.timeout(30)
def test_same_seed_same_document_and_seeds_differ() -> None:
    schema = Evaluation.model_json_schema()
    assert FakeJson(schema, 7).text() == FakeJson(schema, 7).text()
    assert len({FakeJson(schema, seed).text() for seed in range(20)}) == 20


@pytest.mark.timeout(30)
def test_evaluation_answers_have_a_realistic_length() -> None:
    lengths = [count_tokens(FakeJson(Evaluation.model_json_schema(), s).text()) for s in range(100)]
    assert min(lengths) >= 30
    assert max(lengths) <= 1200
    assert 80 <= sum(lengths) / len(lengths) <= 500


@pytest.mark.timeout(30)
@pytest.mark.parametrize("tokens", [0, 1, 7, 200, 1000])
def test_plain_text_has_the_requested_length(tokens: int) -> None:
    text = fake_text(tokens, seed=3)
    assert count_tokens(text) == tokens
    assert text == fake_text(tokens, seed=3)


@pytest.mark.timeout(30)
def test_json_object_mode_yields_an_object() -> None:
    doc = FakeJson(JSON_OBJECT_SCHEMA, 1).document()
    assert isinstance(doc, dict)
    assert errors(doc, dict(JSON_OBJECT_SCHEMA)) == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("seed", range(20))
def test_corrupted_text_is_not_json(seed: int) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(corrupt(FakeJson(Evaluation.model_json_schema(), seed).text()))


@pytest.mark.timeout(30)
def test_formats_exclusive_bounds_and_multiples() -> None:
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "id": {"type": "string", "format": "uuid"},
            "odd": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
            "step": {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.25},
            "pair": {"type": "array", "prefixItems": [{"const": 1}, {"const": "b"}], "maxItems": 2},
            "maybe": {"type": ["string", "null"], "maxLength": 4},
        },
        "required": ["when", "id", "odd", "step", "pair", "maybe"],
    }
    for seed in range(30):
        doc = FakeJson(schema, seed).document()
        assert doc["when"].endswith("Z")
        assert len(doc["id"]) == 36
        assert 0 < doc["odd"] < 3
        assert doc["step"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert doc["pair"] == [1, "b"][: len(doc["pair"])]
        assert doc["maybe"] is None or len(doc["maybe"]) <= 4
