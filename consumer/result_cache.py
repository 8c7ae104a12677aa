"""Content-addressed results: a request evaluated before costs no engine call.

The key is a SHA-256 over everything that determines a result: the rendered messages (job,
candidate, rubric, through the prompt template), the prompt version, the model and A/B variant,
the generation parameters (``max_tokens``, temperature, seed) and the JSON Schema the reply must
follow. A change to any of them misses the cache; the request's id, metadata and timestamps do
not take part, so an applicant who applies twice, an import run again or a replay of the topic
is answered from the cache. Only valid evaluations are kept.

Two identical requests in flight at once reach the engine once: the second waits for the first
(`claim`), then takes its result from the cache, or calls the engine itself if the first failed.
Entries live in a bounded LRU shared by the event loop and the cache topic's reader thread
(`consumer.cache_topic`), which keeps every worker of the group current and fills a restarted
worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass

from consumer.backends.base import Prompt
from consumer.jobs import Route

KEY_VERSION = 1  # bump when the key's recipe changes: old entries then miss


@dataclass(frozen=True, slots=True)
class CachedReply:
    """What a later identical request is answered with.

    Attributes:
        text: the engine's reply (a valid evaluation).
        completed_at: when it was first produced (ISO 8601).
        prompt_tokens: prompt tokens of the original evaluation.
        completion_tokens: tokens it generated.
    """

    text: str
    completed_at: str
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_json(self) -> bytes:
        """The cache topic's value."""
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, value: bytes) -> CachedReply:
        """Parses a cache topic value (raises ValueError/TypeError/KeyError when malformed)."""
        return cls(**json.loads(value))


def cache_key(route: Route, prompt: Prompt) -> str:
    """The key of one native request's result."""
    recipe = {
        "v": KEY_VERSION,
        "prompt_version": route.prompt_version,
        "model": route.model,
        "variant": route.variant,
        "messages": prompt.messages,
        "max_tokens": prompt.max_tokens,
        "temperature": prompt.temperature,
        "seed": prompt.seed,
        "schema": prompt.schema,
    }
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResultCache:
    """A bounded LRU of replies by key, with one engine call per key in flight.

    Args:
        max_entries: entries kept; the least recently used goes first.
        publish: called with (key, reply) for each new entry made here (the cache topic).
    """

    def __init__(
        self, max_entries: int, publish: Callable[[str, CachedReply], None] | None = None
    ) -> None:
        self._max = max_entries
        self._publish = publish or (lambda key, reply: None)
        self._entries: OrderedDict[str, CachedReply] = OrderedDict()
        self._lock = threading.Lock()  # the loop and the cache topic's reader both write
        self._in_flight: dict[str, asyncio.Future[None]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> CachedReply | None:
        """The reply for ``key``, if cached (and marks it recently used)."""
        with self._lock:
            reply = self._entries.get(key)
            if reply is not None:
                self._entries.move_to_end(key)
            return reply

    def load(self, key: str, reply: CachedReply) -> None:
        """Keeps an entry read from the cache topic (any thread)."""
        with self._lock:
            self._entries[key] = reply
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def put(self, key: str, reply: CachedReply) -> None:
        """Keeps an entry made by this worker and publishes it to the others."""
        self.load(key, reply)
        self._publish(key, reply)

    @asynccontextmanager
    async def claim(self, key: str) -> AsyncIterator[CachedReply | None]:
        """The cached reply, or None and the right to call the engine for ``key``.

        An identical request already in flight is waited for first; if it left no entry,
        this one calls the engine itself.
        """
        while True:
            cached = self.get(key)
            if cached is not None:
                yield cached
                return
            pending = self._in_flight.get(key)
            if pending is None:
                break
            await asyncio.shield(pending)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = done
        try:
            yield None
        finally:
            del self._in_flight[key]
            done.set_result(None)
