"""Lanes: the bulk backlog and the interactive requests that overtake it.

A worker consumes the requests topic (the bulk lane) and, where configured, an interactive
topic. Each lane has its own read-ahead and pauses its own partitions, so a full bulk
backlog never stops the interactive topic; interactive requests are admitted first, may
use a few slots beyond the window (`LaneSettings.reserve`), and carry the engine's
request priority where the engine has one (vLLM ``priority``; Ollama has none).
"""

from __future__ import annotations

from typing import Literal

Lane = Literal["bulk", "interactive"]
BULK: Lane = "bulk"
INTERACTIVE: Lane = "interactive"
# The interactive topic the local broker and `evalstream-producer topics create` make; a worker
# consumes it only when told to (``--interactive-topic``).
INTERACTIVE_TOPIC = "evalstream.requests.interactive"
# Admission order: the first lane with a waiting request goes first.
LANES: tuple[Lane, ...] = (INTERACTIVE, BULK)


def lane_topics(requests_topic: str, interactive_topic: str | None) -> dict[str, Lane]:
    """The topics a worker consumes and the lane of each."""
    topics: dict[str, Lane] = {requests_topic: BULK}
    if interactive_topic is not None:
        topics[interactive_topic] = INTERACTIVE
    return topics
