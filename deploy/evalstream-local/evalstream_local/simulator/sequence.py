"""One generation request as the simulated engine sees it: prompt, answer, progress."""

from __future__ import annotations

import asyncio
import enum
import itertools
from dataclasses import dataclass, field

from evalstream_local.simulator.tokens import head_tokens, split_tokens

_ids = itertools.count()


class SequenceState(enum.Enum):
    """Where a sequence is in the engine."""

    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(eq=False)
class Sequence:
    """A prompt being prefilled and decoded, and the answer it will produce.

    The answer is decided up front (``answer``); the engine model only decides *when* each of its
    tokens appears. ``output_tokens`` is how many it will generate before stopping, which is the
    answer's length or, when ``max_tokens`` cut it short, the limit (``finish_reason`` "length").

    Attributes:
        prompt_tokens: Prompt length in tokens.
        output_tokens: Tokens generated before the sequence finishes.
        answer: The full text the sequence generates (its first ``output_tokens`` tokens).
        finish_reason: ``"stop"`` or ``"length"``.
        block_hashes: Prefix-cache keys of the prompt's full blocks.
        computed_tokens: Tokens whose KV is in the cache: prompt (cached or prefilled) and output.
        cached_tokens: Prompt tokens found in the prefix cache at admission.
        generated: Tokens generated so far.
        state: Where the sequence is.
        progress: Set by the scheduler when the sequence ends and, if ``streaming``, whenever
            ``generated`` grows.
        streaming: Whether someone follows every token (a stream) or only the end.
        seq_id: Arrival order, unique in the process.
        priority: vLLM's request priority (lower is scheduled first under priority scheduling).
    """

    prompt_tokens: int
    output_tokens: int
    answer: str
    finish_reason: str = "stop"
    block_hashes: tuple[int, ...] = ()
    computed_tokens: int = 0
    cached_tokens: int = 0
    generated: int = 0
    state: SequenceState = SequenceState.WAITING
    arrived_at: float = 0.0
    admitted_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    progress: asyncio.Event | None = None
    streaming: bool = False
    seq_id: int = field(default_factory=lambda: next(_ids))
    priority: int = 0

    @property
    def final_text(self) -> str:
        """The text the sequence has when it finishes."""
        return head_tokens(self.answer, self.output_tokens)

    @property
    def pieces(self) -> list[str]:
        """The final text cut into its tokens, in order (what a stream sends)."""
        return split_tokens(self.final_text)[: self.output_tokens]

    @property
    def pending_tokens(self) -> int:
        """Tokens to compute before the next token can be sampled.

        One while decoding (the KV of the last sampled token); the rest of the prompt while
        prefilling; after a preemption, the prompt and every token generated so far again.
        """
        return max(0, self.prompt_tokens + self.generated - self.computed_tokens)

    @property
    def decoding(self) -> bool:
        """Whether the prompt is computed and the sequence decodes one token per step."""
        return self.generated > 0 and self.pending_tokens == 1

    @property
    def done(self) -> bool:
        """Whether the sequence finished or was aborted."""
        return self.state in (SequenceState.FINISHED, SequenceState.ABORTED)

    def notify(self) -> None:
        """Wakes whoever waits on :attr:`progress` (token by token only for a stream)."""
        if self.progress is not None and (self.streaming or self.done):
            self.progress.set()
