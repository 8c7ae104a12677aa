"""Turns synthetic requests into the benchmark's workload, identical for every way of driving vLLM.

Input: the JSONL of ``evalstream-producer synth``. Output (``--out DIR``):

- ``requests-schema.jsonl``: native evaluation requests for the structured-output runs; the worker
  renders them with its prompt template and asks for the evaluation JSON schema.
- ``requests-noschema.jsonl``: the next requests as OpenAI batch lines carrying the worker's own
  messages, ``ignore_eos`` and a fixed output length (150-200 tokens, per request). Random weights
  produce noise, which the native path would repair and reject; batch lines go through the same
  worker (window, Kafka, commits) and are passed through unjudged.
- ``prompts-{schema,noschema}.jsonl``: per request the chat-templated prompt text, its token ids
  and the output length: the offline ceiling (``offline.py``) and ``vllm bench serve`` read these,
  so all three see the very tokens the worker's chat requests become.
- ``serve-noschema.jsonl``: the same prompts in ``vllm bench serve``'s custom format.
- ``schema.json`` (the evaluation schema the worker sends), ``prompt-lengths.json``
  (id -> prompt tokens, to check the worker's usage) and ``workload.json`` (statistics).

Job ads, rubrics and resumes are scaled by one factor so that the mean prompt is about
``--target-prompt-tokens`` with the device's tokenizer (a small one trained on Python sources,
which needs more tokens per character than the real model's); every candidate of a job still
shares the same job part as a prefix.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import zlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchlib import summary, write_json

from consumer.prompts import PromptTemplate, evaluation_schema
from consumer.schemas import BATCH_CHAT_URL, EvaluationRequest

# Scale resumes only when the mean prompt misses the target by more than this share.
SCALE_TOLERANCE = 0.05
# Never cut a text below this many characters.
MIN_TEXT_CHARS = 200


# ==== ADAPT HERE when the worker changes how it builds its chat messages =======================
# This must return exactly the `messages` the worker sends to /v1/chat/completions for a native
# request (today: consumer.evaluator.Evaluator._prompt -> PromptTemplate().render(request)).
def worker_messages(request: EvaluationRequest) -> list[dict[str, str]]:
    """The chat messages the worker sends for ``request``."""
    return [dict(message) for message in PromptTemplate().render(request)]


# ===============================================================================================


def output_tokens(request_id: str, low: int, high: int) -> int:
    """A fixed output length for one request, the same on every run (crc32 of the id)."""
    return low + zlib.crc32(request_id.encode()) % (high - low + 1)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class Renderer:
    """Chat template and tokenizer of the served model (the device's locally built tokenizer)."""

    def __init__(self, tokenizer_dir: str) -> None:
        transformers: Any = importlib.import_module("transformers")
        self._tok = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)

    def render(self, requests: Sequence[EvaluationRequest]) -> tuple[list[str], list[list[int]]]:
        """Prompt texts as vLLM's chat endpoint renders them, and their token ids."""
        texts = [
            self._tok.apply_chat_template(
                worker_messages(r), tokenize=False, add_generation_prompt=True
            )
            for r in requests
        ]
        # The chat endpoint tokenizes the rendered text without adding special tokens.
        ids: list[list[int]] = self._tok(texts, add_special_tokens=False)["input_ids"]
        return texts, ids


def job_prefix_tokens(requests: Sequence[EvaluationRequest], ids: Sequence[list[int]]) -> float:
    """Mean tokens shared by candidates of the same job (per request), from pairs of prompts."""
    first: dict[str, int] = {}
    shared: dict[str, int] = {}
    counts: dict[str, int] = defaultdict(int)
    for i, request in enumerate(requests):
        job = request.job.id
        counts[job] += 1
        if job not in first:
            first[job] = i
        elif job not in shared:
            shared[job] = common_prefix(ids[first[job]], ids[i])
    weighted = [(shared[j], counts[j]) for j in shared]
    total = sum(c for _, c in weighted)
    return sum(s * c for s, c in weighted) / total if total else 0.0


def scale_text(text: str, factor: float) -> str:
    """``text`` cut (at a word boundary) or repeated to ``factor`` times its length."""
    target = max(MIN_TEXT_CHARS, round(len(text) * factor))
    if target < len(text):
        cut = text.rfind(" ", 0, target)
        return text[: cut if cut > target // 2 else target]
    scaled = text
    while len(scaled) < target:
        scaled = f"{scaled}\n\n{text}"
    return scaled[:target]


def scale_request(request: EvaluationRequest, factor: float) -> EvaluationRequest:
    """The request with job ad, rubric and resume scaled alike (the job part stays shared)."""
    data = request.model_dump(exclude_none=True)
    data["job"]["text"] = scale_text(request.job.text, factor)
    data["candidate"]["text"] = scale_text(request.candidate.text, factor)
    if request.rubric:
        data["rubric"] = scale_text(request.rubric, factor)
    return EvaluationRequest.model_validate(data)


def batch_line(request: EvaluationRequest, out_len: int, model: str) -> dict[str, Any]:
    """An OpenAI batch line with the worker's messages and a fixed output length."""
    body = {
        "model": model,
        "messages": worker_messages(request),
        "max_tokens": out_len,
        "temperature": 1.0,
        "ignore_eos": True,
    }
    return {"custom_id": request.id, "method": "POST", "url": BATCH_CHAT_URL, "body": body}


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """One compact JSON object per line."""
    with path.open("w") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--synth", type=Path, required=True, help="JSONL from evalstream-producer synth")
    p.add_argument("--tokenizer", required=True, help="the served model's directory")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--schema-count", type=int, default=10_000)
    p.add_argument("--noschema-count", type=int, default=5_000)
    p.add_argument("--target-prompt-tokens", type=int, default=2_000, help="0: keep as generated")
    p.add_argument("--max-prompt-tokens", type=int, default=0, help="0: no limit")
    p.add_argument("--output-min", type=int, default=150)
    p.add_argument("--output-max", type=int, default=200)
    p.add_argument("--model", default="gemma3-1b", help="served model name")
    return p.parse_args()


def scaled(
    originals: list[EvaluationRequest], renderer: Renderer, target: int
) -> tuple[list[EvaluationRequest], list[str], list[list[int]], float, float]:
    """Requests scaled to a mean of ``target`` prompt tokens: requests, prompts, token ids, the
    factor and the mean before scaling.

    The synthetic texts are sized for a real 262k-token vocabulary; the device's small tokenizer
    needs more tokens for the same text. All texts are scaled alike, twice at most (the template's
    fixed part does not scale), which keeps the real proportions of job part and resume.
    """
    requests, factor = originals, 1.0
    texts, ids = renderer.render(requests)
    before = statistics.fmean(len(x) for x in ids)
    for _ in range(2):
        mean = statistics.fmean(len(x) for x in ids)
        if not target or abs(mean / target - 1) <= SCALE_TOLERANCE:
            break
        factor *= target / mean
        requests = [scale_request(r, factor) for r in originals]
        texts, ids = renderer.render(requests)
    return requests, texts, ids, factor, before


def main() -> None:
    args = parse_args()
    needed = args.schema_count + args.noschema_count
    with args.synth.open() as lines:
        originals = [EvaluationRequest.model_validate_json(x) for x in lines if x.strip()]
    renderer = Renderer(args.tokenizer)
    requests, texts, ids, factor, before = scaled(originals, renderer, args.target_prompt_tokens)
    # Prompts the model's context cannot take with the reply's budget are left out (the worker
    # would dead-letter them: the engine refuses them), so that every run sees the same prompts.
    keep = [
        i
        for i, x in enumerate(ids)
        if not args.max_prompt_tokens or len(x) <= args.max_prompt_tokens
    ]
    dropped = len(ids) - len(keep)
    keep = keep[:needed]
    if len(keep) < needed:
        raise SystemExit(f"{args.synth} gives {len(keep)} requests that fit, {needed} are needed")
    requests, texts, ids = (
        [requests[i] for i in keep],
        [texts[i] for i in keep],
        [ids[i] for i in keep],
    )
    out_lens = [output_tokens(r.id, args.output_min, args.output_max) for r in requests]
    # The first requests are the schema set, the next ones the no-schema set.
    schema, noschema = range(args.schema_count), range(args.schema_count, needed)

    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "requests-schema.jsonl").open("w") as out:
        for i in schema:
            out.write(requests[i].model_dump_json(exclude_none=True) + "\n")
    write_jsonl(
        args.out / "requests-noschema.jsonl",
        [batch_line(requests[i], out_lens[i], args.model) for i in noschema],
    )
    for name, part in (("schema", schema), ("noschema", noschema)):
        rows = [
            {
                "id": requests[i].id,
                "prompt": texts[i],
                "prompt_token_ids": ids[i],
                "output_tokens": out_lens[i] if name == "noschema" else None,
            }
            for i in part
        ]
        write_jsonl(args.out / f"prompts-{name}.jsonl", rows)
    write_jsonl(
        args.out / "serve-noschema.jsonl",
        [{"prompt": texts[i], "output_tokens": out_lens[i]} for i in noschema],
    )
    write_json(args.out / "schema.json", evaluation_schema())
    write_json(
        args.out / "prompt-lengths.json", {r.id: len(x) for r, x in zip(requests, ids, strict=True)}
    )
    stats = {
        "model": args.model,
        "requests": {"schema": args.schema_count, "noschema": args.noschema_count},
        "jobs": len({r.job.id for r in requests}),
        "prompt_tokens": summary([float(len(x)) for x in ids]),
        "prompt_tokens_before_scaling_mean": before,
        "text_scale_factor": factor,
        "dropped_over_max_prompt_tokens": dropped,
        "shared_job_prefix_tokens_mean": job_prefix_tokens(requests, ids),
        "noschema_output_tokens": summary([float(out_lens[i]) for i in noschema]),
        "prompt_template": PromptTemplate().version,
        "example_prompt_head": texts[0][:600],
    }
    write_json(args.out / "workload.json", stats)
    print(json.dumps({k: v for k, v in stats.items() if k != "example_prompt_head"}, indent=1))


if __name__ == "__main__":
    main()
