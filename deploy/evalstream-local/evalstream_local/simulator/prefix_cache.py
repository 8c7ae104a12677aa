"""Automatic prefix caching of the simulated engine: which prompt blocks are already computed."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class PrefixCache:
    """An LRU set of computed KV blocks, keyed by chained block hashes (vLLM's scheme).

    A prompt reuses its longest run of leading blocks already present; each block it computes is
    added. Capacity is counted in blocks; the least recently used blocks are evicted first.
    """

    def __init__(self, capacity_blocks: int, block_tokens: int) -> None:
        self._blocks: OrderedDict[int, None] = OrderedDict()
        self._capacity = max(0, capacity_blocks)
        self.block_tokens = block_tokens
        self.queries = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def match(self, hashes: Iterable[int], prompt_tokens: int) -> int:
        """Returns how many leading prompt tokens are cached, and counts the query.

        At least one prompt token is always computed, as in vLLM, so that the step that finishes
        the prefill has a position to sample from.
        """
        matched = 0
        for block in hashes:
            if block not in self._blocks:
                break
            self._blocks.move_to_end(block)
            matched += 1
        cached = min(matched * self.block_tokens, max(0, prompt_tokens - 1))
        self.queries += prompt_tokens
        self.hits += cached
        return cached

    def insert(self, hashes: Iterable[int]) -> None:
        """Records the blocks of a prompt whose prefill completed."""
        if self._capacity == 0:
            return
        for block in hashes:
            self._blocks[block] = None
            self._blocks.move_to_end(block)
        while len(self._blocks) > self._capacity:
            self._blocks.popitem(last=False)
