"""Token arithmetic of the engine simulator.

The simulator has no tokenizer. Every length it reports or schedules comes from one estimate,
:func:`count_tokens`: four characters make one token, the figure OpenAI and most model cards give
for English text. The same rule cuts an answer into the pieces a stream sends
(:func:`split_tokens`), cuts a prompt into prefix-cache blocks (:func:`block_hashes`) and renders a
chat into the one string both counts and caches are taken from (:func:`render_chat`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

CHARS_PER_TOKEN = 4
"""Characters per token of the estimate; English prose averages about four."""

# A chat template adds a few tokens per turn (role markers, separators); Gemma's adds
# `<start_of_turn>user\n ... <end_of_turn>\n`, Llama 3's a header of similar size.
_TURN_OPEN = "<start_of_turn>{role}\n"
_TURN_CLOSE = "<end_of_turn>\n"
_GENERATION_PROMPT = "<start_of_turn>model\n"


def count_tokens(text: str) -> int:
    """Estimates the number of tokens of ``text``: one per four characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def split_tokens(text: str) -> list[str]:
    """Cuts ``text`` into the pieces a stream sends, one per estimated token.

    ``len(split_tokens(t)) == count_tokens(t)`` for every ``t``.
    """
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


def head_tokens(text: str, tokens: int) -> str:
    """Returns the first ``tokens`` estimated tokens of ``text`` (what a length cut-off leaves)."""
    return text[: max(0, tokens) * CHARS_PER_TOKEN]


def tail_tokens(text: str, tokens: int) -> str:
    """Returns the last ``tokens`` estimated tokens of ``text``."""
    if tokens <= 0:
        return ""
    return text[-tokens * CHARS_PER_TOKEN :]


def message_text(content: Any) -> str:
    """Flattens an OpenAI/Ollama message ``content`` (a string or a list of parts) to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
        return "".join(str(p) for p in parts)
    return str(content)


def render_chat(messages: Iterable[Mapping[str, Any]]) -> str:
    """Renders chat messages the way a chat template would, generation prompt included."""
    turns = [
        _TURN_OPEN.format(role=m.get("role", "user")) + message_text(m.get("content")) + _TURN_CLOSE
        for m in messages
    ]
    return "".join(turns) + _GENERATION_PROMPT


def block_hashes(text: str, block_tokens: int) -> tuple[int, ...]:
    """Hashes the full ``block_tokens``-sized blocks of ``text``, each chained to its predecessor.

    Two prompts share the first ``k`` hashes exactly when they share their first ``k`` blocks, which
    is how vLLM's automatic prefix caching finds reusable KV blocks. A trailing partial block is
    never cached, as in vLLM.
    """
    size = block_tokens * CHARS_PER_TOKEN
    hashes: list[int] = []
    previous = 0
    for start in range(0, len(text) - size + 1, size):
        previous = hash((previous, text[start : start + size]))
        hashes.append(previous)
    return tuple(hashes)
