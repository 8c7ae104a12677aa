"""How many tokens a reply that follows a JSON schema can take.

With structured output the engine's grammar makes every reply follow the schema, so the
schema's bounds (``maxLength``, ``maxItems``, enums, integer ranges) bound the reply. A
``max_tokens`` below that bound cuts replies that follow the schema (``finish_reason`` =
``length``); one at the bound costs nothing extra, since engines allocate a reply's memory as
it grows. The bound counts characters of compact JSON and takes one token per character: true
of every tokenizer for ASCII text, with no whitespace between tokens (vLLM without
``any_whitespace``; llama.cpp's grammar allows a few blanks, covered by the margin). Escapes
(``\\u00e9``) and byte-level tokens of non-ASCII text can exceed it: such a reply is cut and
reported as truncated, never repaired in a loop.
"""

from __future__ import annotations

import json
from typing import Any

# End-of-sequence and special tokens a reply may end with, and llama.cpp's optional blanks.
_MARGIN_TOKENS = 16
_INTEGER_CHARS = 20  # an integer without bounds: 64-bit with its sign
_NUMBER_CHARS = 32


def schema_char_bound(schema: dict[str, Any]) -> int | None:
    """The longest compact JSON text that follows ``schema``; None when it is unbounded."""
    return _bound(schema)


def reply_token_bound(schema: dict[str, Any]) -> int | None:
    """The ``max_tokens`` a reply that follows ``schema`` always fits; None when unbounded."""
    chars = _bound(schema)
    return None if chars is None else chars + _MARGIN_TOKENS


def _bound(node: dict[str, Any]) -> int | None:
    if "enum" in node:
        return max(len(json.dumps(v)) for v in node["enum"])
    if "const" in node:
        return len(json.dumps(node["const"]))
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        bounds = [_bound(option) for option in options]
        return None if None in bounds else max(b for b in bounds if b is not None)
    kind = node.get("type")
    if kind == "object":
        return _object_bound(node)
    if kind == "array":
        return _array_bound(node)
    if kind == "string":
        # Two quotes around at most maxLength characters.
        return None if "maxLength" not in node else 2 + int(node["maxLength"])
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        if low is None or high is None:
            return _INTEGER_CHARS
        return max(len(str(int(low))), len(str(int(high))))
    if kind == "number":
        return _NUMBER_CHARS
    if kind == "boolean":
        return len("false")
    if kind == "null":
        return len("null")
    return None


def _object_bound(node: dict[str, Any]) -> int | None:
    if node.get("additionalProperties", False) not in (False, None):
        return None  # any key may follow
    properties: dict[str, Any] = node.get("properties", {})
    total = 2 + max(0, len(properties) - 1)  # braces and commas
    for key, value in properties.items():
        bound = _bound(value)
        if bound is None:
            return None
        total += len(json.dumps(key)) + 1 + bound  # "key": value
    return total


def _array_bound(node: dict[str, Any]) -> int | None:
    if "maxItems" not in node:
        return None
    items = int(node["maxItems"])
    if items == 0:
        return 2
    item = _bound(node.get("items", {}))
    return None if item is None else 2 + items * item + (items - 1)
