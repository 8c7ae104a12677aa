"""Latency profiles of the engine simulator: the parameters of its continuous-batching model.

A profile says how long one engine step takes and how many sequences a step may carry. The step
model (see :mod:`evalstream_local.simulator.batch_planner`) is::

    step_s = step_base_s + per_seq_s * n + per_seq_sq_s * n * streamed + per_prefill_token_s * pre

where ``n`` is the number of sequences in the step, ``streamed`` those whose client follows every
token (a stream) and ``pre`` the step's uncached prompt tokens; every running sequence decodes
one token per step.

``vllm`` is calibrated against H200 figures (vLLM 0.26, gemma-3-1b shape, ~2000 prompt / ~175-200
output tokens, ``--max-num-batched-tokens 16384``). Two curves, from two kinds of client:

* streamed (``vllm bench serve``, GPU.md and BENCHMARKS §1 runs 2-3): 11.0 req/s at 8
  concurrent, 30.6 at 64, 36.8 at 128, 35.0 at 256, 29.5 at 1024 (median time to first token
  13 s); 40.1 at 128 with a 600-token prefix shared by all prompts. It peaks between 64 and 160
  and *declines* beyond: the single API-server process sends every running request's token as
  an event each step, and each event costs more the more streams are open.
* not streamed (the worker, ``direct.py``; BENCHMARKS §1 run 3): relative to 128 concurrent
  0.35 at 8, 1.10 at 256, 1.18 at 512 (11.7 s median latency there). It rises up to the slot
  limit: a bigger batch spreads each step's fixed cost over more sequences.

With ``n`` requests running in a closed loop, a step carries ``n`` sequences and on average
``10 n`` prefill tokens (2000 prompt tokens spread over 200 decode steps), so a request takes 200
steps of ``t(n) = step_base_s + (per_seq_s + 10 per_prefill_token_s) n + per_seq_sq_s n**2``
(streamed) and throughput is ``n / (200 t(n))``: it rises while the fixed cost dominates, peaks at
``n* = sqrt(step_base_s / per_seq_sq_s)`` and falls as the square term takes over. Without
streams the square term is gone and throughput approaches ``1 / (200 (per_seq_s + 10
per_prefill_token_s))``. The terms are solved from the figures above:

* ``per_prefill_token_s`` 3.8 us: prefill compute per uncached prompt token. With a 600-token
  prefix shared by every prompt it yields the ~9 % gain of 36.8 -> 40.1 req/s.
* ``per_seq_sq_s`` 0.12 us, per streamed sequence and sequence in the step: the API server's
  per-event cost. With ``step_base_s`` it puts the streamed peak at ``n*`` = 144.
* ``step_base_s`` 2.5 ms: the fixed cost of one forward pass (kernel launches, reading the
  weights). It is what small batches waste: it sets 8 concurrent at about a third of 128.
* ``per_seq_s`` 60 us: the cost each sequence adds to a step (attention over its KV, sampling).
  It sets the level: 17 ms steps at 128 running, 37.7 req/s at the streamed peak.
* ``max_num_seqs`` 512 (vLLM's default is 1024): at 1024 concurrent the real server kept only
  about 640 requests in the batch; the rest waited ~13 s for their first token (Little's law:
  29.5 req/s x 13 s = ~380 waiting). A slot limit of 512 reproduces that queue.

Closed-loop requests/s (:func:`evalstream_local.simulator.calibration.closed_loop`, same prompts),
streamed: 12.2 at 8, 34.6 at 64, 37.7 at 128, 36.0 at 256, 30.1 at 512 and 30.4 at 1024 (0.32,
0.92, 1, 0.96, 0.80 and 0.81 of 128); not streamed: 12.2, 36.5, 42.6, 46.3, 48.1 and 48.6 (0.29,
0.86, 1, 1.09, 1.13 and 1.14 of 128; 10.6 s latency at 512).

``ollama`` models a llama.cpp runner with ``num_parallel`` slots (``OLLAMA_NUM_PARALLEL``) on a
consumer GPU, about 80 tokens/s for a single stream, and a pending queue of ``max_queue``
(``OLLAMA_MAX_QUEUE``) beyond which requests are refused with 503. It has no square term.

``instant`` answers at once; it isolates the worker's own CPU cost.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

ProfileName = Literal["vllm", "ollama", "instant"]
PROFILE_NAMES: tuple[ProfileName, ...] = ("vllm", "ollama", "instant")

VLLM_MODEL = "google/gemma-3-1b-it"
OLLAMA_MODEL = "gemma3:1b"


@dataclass(frozen=True)
class SimulatorProfile:
    """Parameters of one simulated engine.

    Attributes:
        name: Profile name.
        models: Served model names; the first is the default and labels the metrics.
        max_num_seqs: Sequences a step may carry (vLLM ``--max-num-seqs``; Ollama's slots).
        max_num_batched_tokens: Tokens a step may process, decode and prefill together
            (vLLM ``--max-num-batched-tokens``; llama.cpp ``n_batch``). Longer prefills are
            chunked over several steps.
        step_base_s: Fixed cost of one step, in simulated seconds.
        per_seq_s: Cost each sequence in the step adds.
        per_prefill_token_s: Cost of each uncached prompt token prefilled in the step.
        kv_capacity_tokens: KV cache size in tokens; a full cache preempts the newest sequence.
        per_seq_sq_s: Cost that grows with the square of the sequences in the step.
        block_tokens: Prefix-cache block size in tokens (vLLM's default 16).
        prefix_caching: Whether prompt blocks already computed are reused.
        max_waiting: Pending-queue limit (Ollama's ``OLLAMA_MAX_QUEUE``); ``None`` is unbounded.
        max_model_len: Context length (vLLM ``--max-model-len``; Ollama's default ``num_ctx``).
        default_text_tokens: Length of a free-text answer when the request sets no limit.
        time_scale: How much faster than the wall clock simulated time runs: 20 makes every
            step and delay 20x shorter (tests, demos); 1 is real time.
        instant: Answer at once, skipping the latency model.
        latency_spike_s: Extra delay of the ``latency_spike`` fault, in simulated seconds.
        priority_scheduling: vLLM's ``--scheduling-policy priority``: waiting sequences are
            admitted by ``priority`` (lower first), then arrival; without it a non-zero
            priority is refused, as vLLM refuses it.
    """

    name: ProfileName
    models: tuple[str, ...]
    max_num_seqs: int
    max_num_batched_tokens: int
    step_base_s: float
    per_seq_s: float
    per_prefill_token_s: float
    kv_capacity_tokens: int
    per_seq_sq_s: float = 0.0
    block_tokens: int = 16
    prefix_caching: bool = True
    max_waiting: int | None = None
    max_model_len: int = 32768
    default_text_tokens: int = 128
    time_scale: float = 1.0
    instant: bool = False
    latency_spike_s: float = 5.0
    priority_scheduling: bool = False

    def with_options(self, **options: Any) -> SimulatorProfile:
        """Returns a copy with the given fields replaced (``num_parallel``/``max_queue`` too)."""
        if "num_parallel" in options:
            options["max_num_seqs"] = options.pop("num_parallel")
        if "max_queue" in options:
            options["max_waiting"] = options.pop("max_queue")
        if "models" in options and options["models"] is not None:
            options["models"] = tuple(options["models"])
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown simulator option(s): {', '.join(unknown)}")
        values = {k: v for k, v in options.items() if v is not None}
        profile = dataclasses.replace(self, **values)
        profile.validate()
        return profile

    def validate(self) -> None:
        """Raises ``ValueError`` when a parameter is out of range."""
        if not self.models:
            raise ValueError("a simulator serves at least one model")
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1:
            raise ValueError("max_num_seqs and max_num_batched_tokens must be positive")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if self.max_waiting is not None and self.max_waiting < 0:
            raise ValueError("max_waiting must be >= 0")


VLLM_PROFILE = SimulatorProfile(
    name="vllm",
    models=(VLLM_MODEL,),
    # vLLM's default token budget for the API server on an H100/H200-class GPU; fewer slots
    # than its default 1024 (see above: the real server keeps ~640 in the batch).
    max_num_seqs=512,
    max_num_batched_tokens=8192,
    step_base_s=2.5e-3,
    per_seq_s=60e-6,
    per_seq_sq_s=0.12e-6,
    per_prefill_token_s=3.8e-6,
    # gemma-3-1b keeps ~26 KiB of KV per token; ~100 GiB of an H200 holds about 4M tokens.
    kv_capacity_tokens=4_000_000,
)

OLLAMA_PROFILE = SimulatorProfile(
    name="ollama",
    models=(OLLAMA_MODEL,),
    max_num_seqs=4,
    # Ollama's default num_batch.
    max_num_batched_tokens=512,
    # One stream decodes ~80 tok/s; each further slot in the batch adds ~25 % of that.
    step_base_s=9.5e-3,
    per_seq_s=3e-3,
    # ~2,500 prompt tokens/s of prefill.
    per_prefill_token_s=0.4e-3,
    kv_capacity_tokens=4 * 4096,
    max_waiting=512,
    max_model_len=4096,
)

INSTANT_PROFILE = SimulatorProfile(
    name="instant",
    models=(VLLM_MODEL, OLLAMA_MODEL),
    max_num_seqs=1 << 20,
    max_num_batched_tokens=1 << 30,
    step_base_s=0.0,
    per_seq_s=0.0,
    per_prefill_token_s=0.0,
    kv_capacity_tokens=1 << 40,
    prefix_caching=False,
    instant=True,
)

_PROFILES: dict[str, SimulatorProfile] = {
    "vllm": VLLM_PROFILE,
    "ollama": OLLAMA_PROFILE,
    "instant": INSTANT_PROFILE,
}


def load_profile(name: str, **options: Any) -> SimulatorProfile:
    """Returns the named profile with ``options`` applied (``None`` values keep the default)."""
    try:
        base = _PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {PROFILE_NAMES}") from None
    return base.with_options(**options)
