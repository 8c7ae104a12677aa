"""Answers of the engine simulator: JSON valid against a schema, or plain text, from a seed.

:class:`FakeJson` walks a JSON Schema the way a grammar-constrained decoder does and picks every
free choice (string length, number, array size, optional property, ``anyOf`` branch) from a
seeded generator, so one seed always gives one document. It supports what structured-output
schemas use in practice: ``type`` (one or a list), ``properties``/``required``, ``enum``,
``const``, ``$ref`` into ``$defs``/``definitions``, ``anyOf``/``oneOf``/``allOf``, strings with
``minLength``/``maxLength``/``format``, integers and numbers with inclusive and exclusive bounds
and ``multipleOf``, arrays with ``items``/``prefixItems``/``minItems``/``maxItems``/
``uniqueItems``. ``pattern`` is not honoured.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from typing import Any

from evalstream_local.simulator.tokens import CHARS_PER_TOKEN

Schema = Mapping[str, Any]

# Words of the answers a screening model writes; any vocabulary would do.
_VOCABULARY = (
    "candidate experience strong team python kafka systems delivery ownership design review "
    "production scale latency mentoring communication stakeholder roadmap testing reliable "
    "cloud data pipeline years led built improved reduced shipped lacks limited exposure role "
    "requirements skills backend distributed async streaming clear solid gap senior hiring"
)
_WORDS = _VOCABULARY.split()
_DEPTH_LIMIT = 8
_LONG_TEXT_NAMES = ("summary", "description", "reason", "rationale", "explanation", "text")


class FakeJson:
    """Generates documents valid against one JSON Schema, deterministically from a seed."""

    def __init__(self, schema: Schema, seed: int) -> None:
        self._root = schema
        self._rng = random.Random(seed)

    def document(self) -> Any:
        """Returns a new document valid against the schema (each call draws afresh)."""
        return self._value(self._root, 0, "")

    def text(self) -> str:
        """Returns a new document serialised as a model would write it."""
        return json.dumps(self.document(), ensure_ascii=False)

    def _value(self, schema: Schema, depth: int, name: str) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self._rng.choice(list(schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._value(self._branch(schema[key], depth), depth, name)
        if "allOf" in schema:
            return self._value(_merge(self._resolve(s) for s in schema["allOf"]), depth, name)
        kind = self._type(schema, depth)
        generator = {
            "object": self._object,
            "array": self._array,
            "string": self._string,
            "integer": self._integer,
            "number": self._number,
        }.get(kind)
        if generator is not None:
            return generator(schema, depth, name)
        if kind == "boolean":
            return self._rng.random() < 0.5
        return None

    def _resolve(self, schema: Schema) -> Schema:
        while "$ref" in schema:
            ref = str(schema["$ref"])
            if not ref.startswith("#/"):
                raise ValueError(f"only local $ref is supported, not {ref!r}")
            target: Any = self._root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def _branch(self, branches: list[Schema], depth: int) -> Schema:
        if depth >= _DEPTH_LIMIT:  # a recursive schema: take the branch that ends soonest
            leaves = [
                b for b in branches if self._resolve(b).get("type") not in ("object", "array")
            ]
            if leaves:
                return leaves[0]
        return self._rng.choice(list(branches))

    def _type(self, schema: Schema, depth: int) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            choices = [k for k in kind if k != "null"] or kind
            if depth >= _DEPTH_LIMIT and "null" in kind:
                return "null"
            return str(self._rng.choice(choices))
        if kind is None:
            return "object" if "properties" in schema else "string"
        return str(kind)

    def _object(self, schema: Schema, depth: int, _name: str) -> dict[str, Any]:
        required = set(schema.get("required", ()))
        doc: dict[str, Any] = {}
        for key, sub in schema.get("properties", {}).items():
            skip_optional = depth >= _DEPTH_LIMIT or self._rng.random() < 0.5
            if key in required or not skip_optional:
                doc[key] = self._value(sub, depth + 1, key)
        return doc

    def _array(self, schema: Schema, depth: int, name: str) -> list[Any]:
        prefix = list(schema.get("prefixItems", ()))
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", 1 << 20))
        # A model lists a few items unless the schema says otherwise.
        natural = low if depth >= _DEPTH_LIMIT else self._rng.randint(max(low, 1), max(low, 4))
        count = max(low, min(natural, high))
        items: list[Any] = [self._value(s, depth + 1, name) for s in prefix[:count]]
        item_schema: Schema = schema.get("items") or {}
        tries = 0
        while len(items) < count and tries < 20 * (count + 1):
            tries += 1
            value = self._value(item_schema, depth + 1, name)
            if schema.get("uniqueItems") and value in items:
                continue
            items.append(value)
        return items

    def _string(self, schema: Schema, _depth: int, name: str) -> str:
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return _FORMATS[fmt](self._rng)
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", 1 << 20))
        # What a model writes unconstrained (a phrase; a paragraph for a summary), then clamped.
        long_text = any(word in name.lower() for word in _LONG_TEXT_NAMES)
        natural = self._rng.randint(150, 450) if long_text else self._rng.randint(15, 90)
        return self.words(min(max(natural, low), high), low, high)

    def words(self, target: int, low: int, high: int) -> str:
        """Returns whole words of about ``target`` characters, between ``low`` and ``high``."""
        text = ""
        misses = 0
        while len(text) < target and misses < 8:
            word = self._rng.choice(_WORDS)
            candidate = f"{text} {word}" if text else word
            if len(candidate) > high:
                misses += 1  # a shorter word may still fit
                continue
            text = candidate
        if len(text) < low:
            text = (text + " " + self.prose(low)).strip()[:low].ljust(low, ".")
        return text

    def prose(self, chars: int) -> str:
        """Returns words totalling exactly ``chars`` characters."""
        words: list[str] = []
        size = -1
        while size < chars:
            word = self._rng.choice(_WORDS)
            words.append(word)
            size += len(word) + 1
        return " ".join(words)[:chars].rstrip().ljust(chars, ".")

    def _integer(self, schema: Schema, _depth: int, _name: str) -> int:
        low, high = _bounds(schema, integer=True)
        step = schema.get("multipleOf")
        if step:
            first, last = math.ceil(low / step), math.floor(high / step)
            return int(self._rng.randint(first, max(first, last)) * step)
        return self._rng.randint(int(low), int(max(low, high)))

    def _number(self, schema: Schema, _depth: int, _name: str) -> float:
        low, high = _bounds(schema, integer=False)
        step = schema.get("multipleOf")
        if step:
            first, last = math.ceil(low / step), math.floor(high / step)
            return float(self._rng.randint(first, max(first, last)) * step)
        return round(self._rng.uniform(low, high), 3) if high > low else float(low)


def _bounds(schema: Schema, *, integer: bool) -> tuple[float, float]:
    low = float(schema.get("minimum", 0 if "maximum" not in schema else schema["maximum"] - 100))
    high = float(schema.get("maximum", low + 100))
    epsilon = 1 if integer else 1e-3
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(exclusive_low, int | float) and not isinstance(exclusive_low, bool):
        low = max(low, float(exclusive_low) + epsilon)
    if isinstance(exclusive_high, int | float) and not isinstance(exclusive_high, bool):
        high = min(high, float(exclusive_high) - epsilon)
    if integer:
        low, high = math.ceil(low), math.floor(high)
    return low, max(low, high)


def _merge(schemas: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for schema in schemas:
        for key, value in schema.items():
            if key in ("properties",) and key in merged:
                merged[key] = {**merged[key], **value}
            elif key == "required" and key in merged:
                merged[key] = [*merged[key], *value]
            else:
                merged[key] = value
    return merged


_FORMATS = {
    "date-time": lambda r: f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T10:00:00Z",
    "date": lambda r: f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "email": lambda r: f"{r.choice(_WORDS)}{r.randint(1, 99)}@example.com",
    "uuid": lambda r: f"{r.getrandbits(32):08x}-0000-4000-8000-{r.getrandbits(48):012x}",
    "uri": lambda r: f"https://example.com/{r.choice(_WORDS)}",
}


def fake_text(tokens: int, seed: int) -> str:
    """Returns plain prose of exactly ``tokens`` estimated tokens."""
    return FakeJson({}, seed).prose(max(0, tokens) * CHARS_PER_TOKEN)


JSON_OBJECT_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "maxLength": 160},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "notes": {"type": "array", "items": {"type": "string", "maxLength": 80}, "maxItems": 3},
    },
    "required": ["answer", "confidence", "notes"],
}
"""What a ``json_object`` request (any JSON object) gets."""


def corrupt(text: str) -> str:
    """Returns a broken version of ``text``: cut mid-document, so it no longer parses as JSON."""
    cut = max(1, len(text) // 2)
    return text[:cut] + ' "<|truncated'
