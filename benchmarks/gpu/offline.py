"""The offline ceiling: vLLM's own engine fed every prompt at once, no HTTP, no Kafka.

vLLM 0.26.0's ``vllm bench throughput`` cannot read our prompts (it has no ``custom`` dataset, and
its ``sharegpt`` loader drops prompts over 1,024 tokens), so this script runs the loop of
``vllm/benchmarks/throughput.py:run_vllm`` on them: one ``LLM`` built from the same engine
arguments, one ``llm.generate`` over all prompts timed with ``perf_counter``, and the same
sampling parameters (temperature 1.0, top_p 1.0, ``ignore_eos``, ``max_tokens`` = the request's
output length). The prompts go in as token ids, exactly those the worker's chat requests become.

Each ``--run NAME:FILE[:COUNT]`` is timed on the one engine after resetting its prefix cache, so
runs do not help each other. A run named ``schema*`` adds the evaluation JSON schema as structured
output (``schema_nobounds``: without the strings' ``maxLength``; no ``ignore_eos``: the grammar
ends the reply) with ``--schema-max-tokens`` and the worker's default temperature (0); its
replies are checked as the worker checks them.

Usage: offline.py --run noschema:P.jsonl --run schema:S.jsonl:5000 --schema schema.json
                  --output-json out.json -- <vllm engine arguments>
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import summary, write_json

WARMUP_PROMPTS = 64


def load_prompts(path: Path, count: int | None) -> list[dict[str, Any]]:
    """Rows of a ``prompts-*.jsonl`` file written by workload.py."""
    rows: list[dict[str, Any]] = []
    with path.open() as lines:
        for line in lines:
            if count is not None and len(rows) >= count:
                break
            rows.append(json.loads(line))
    return rows


def sampling(
    vllm: Any,
    row: dict[str, Any],
    schema: dict[str, Any] | None,
    max_tokens: int,
    temperature: float,
) -> Any:
    """The sampling parameters of one prompt (those of vllm bench throughput, or the schema's)."""
    if schema is None:
        return vllm.SamplingParams(
            n=1, temperature=1.0, top_p=1.0, ignore_eos=True, max_tokens=row["output_tokens"]
        )
    structured: Any = importlib.import_module("vllm.sampling_params").StructuredOutputsParams
    return vllm.SamplingParams(
        n=1,
        temperature=temperature,
        top_p=1.0,
        max_tokens=max_tokens,
        structured_outputs=structured(json=schema),
    )


def timed_run(
    llm: Any,
    vllm: Any,
    rows: list[dict[str, Any]],
    schema: dict[str, Any] | None,
    max_tokens: int,
    temperature: float = 0.0,
) -> dict[str, Any]:
    """One timed ``generate`` over ``rows``, and what came out of it."""
    prompts = [{"prompt_token_ids": row["prompt_token_ids"]} for row in rows]
    params = [sampling(vllm, row, schema, max_tokens, temperature) for row in rows]
    llm.reset_prefix_cache()
    start, started_at = time.perf_counter(), time.time()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    prompt_tokens = sum(len(o.prompt_token_ids or ()) for o in outputs)
    out_lens = [float(len(o.outputs[0].token_ids)) for o in outputs]
    cached = sum(o.num_cached_tokens or 0 for o in outputs)
    reasons: dict[str, int] = {}
    for o in outputs:
        reason = str(o.outputs[0].finish_reason)
        reasons[reason] = reasons.get(reason, 0) + 1
    validity = validation([o.outputs[0] for o in outputs]) if schema is not None else None
    return {
        "requests": len(outputs),
        "elapsed_s": elapsed,
        "requests_per_s": len(outputs) / elapsed,
        "output_tokens_per_s": sum(out_lens) / elapsed,
        "total_tokens_per_s": (sum(out_lens) + prompt_tokens) / elapsed,
        "prompt_tokens": prompt_tokens,
        "prefix_cache_hit_share": cached / prompt_tokens if prompt_tokens else None,
        "output_tokens": summary(out_lens),
        "finish_reasons": reasons,
        "valid_json_share": validity["json_strict_share"] if validity else None,
        "validation": validity,
        "valid_requests_per_s": validity["valid_share"] * len(outputs) / elapsed
        if validity
        else None,
        "structured_output": schema is not None,
        # Epoch seconds of the timed pass: the GPU samples of this window alone are its own.
        "started_at": started_at,
        "ended_at": started_at + elapsed,
    }


def validation(completions: list[Any]) -> dict[str, Any]:
    """How many replies parse (strict JSON, tolerant JSON) and validate, and why others did not.

    Strict is ``json.loads`` as it stands; tolerant accepts control characters inside strings
    (``strict=False``), as the worker does; valid is the worker's own check (`Evaluation`).
    A few failing replies are kept verbatim (``repr``) to be looked at.
    """
    evaluation: Any = importlib.import_module("consumer.records").parse_evaluation
    useful: Any = importlib.import_module("producer.usefulness").usefulness
    counts = {"json_strict": 0, "json_tolerant": 0, "valid": 0}
    evaluations: list[dict[str, Any]] = []
    failures: dict[str, list[str]] = {}
    for completion in completions:
        text, reason = completion.text, str(completion.finish_reason)
        try:
            json.loads(text)
            counts["json_strict"] += 1
        except ValueError:
            pass
        try:
            json.loads(text, strict=False)
            counts["json_tolerant"] += 1
            evaluations.append(evaluation(text).model_dump(mode="json"))
            counts["valid"] += 1
            continue
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            kind = f"{reason}: {type(exc).__name__}"
            examples = failures.setdefault(kind, [])
            if len(examples) < 3:
                examples.append(repr(text[:600]) + f" ({str(exc)[:200]})")
    n = max(1, len(completions))
    return {
        "json_strict_share": counts["json_strict"] / n,
        "json_tolerant_share": counts["json_tolerant"] / n,
        "valid_share": counts["valid"] / n,
        "failures": {k: {"examples": v} for k, v in failures.items()},
        # Shares of all replies: invalid ones count as results that said nothing.
        "usefulness": useful(
            [{"status": "ok", "evaluation": e} for e in evaluations]
            + [{"status": "error"}] * (len(completions) - len(evaluations))
        ).as_dict(),
    }


def main() -> None:
    if "--" not in sys.argv:
        raise SystemExit(__doc__)
    split = sys.argv.index("--")
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", action="append", required=True, help="NAME:FILE[:COUNT]")
    p.add_argument("--schema", type=Path, help="JSON schema for runs named schema*")
    p.add_argument("--schema-max-tokens", type=int, default=512)
    p.add_argument("--schema-temperature", type=float, default=0.0, help="the worker's default")
    p.add_argument("--output-json", type=Path, required=True)
    args = p.parse_args(sys.argv[1:split])

    vllm: Any = importlib.import_module("vllm")
    arg_utils: Any = importlib.import_module("vllm.engine.arg_utils")
    parser_cls: Any = importlib.import_module("vllm.utils.argparse_utils").FlexibleArgumentParser
    engine_parser = arg_utils.EngineArgs.add_cli_args(parser_cls())
    engine_args = arg_utils.EngineArgs.from_cli_args(
        engine_parser.parse_args(sys.argv[split + 1 :])
    )
    schema = json.loads(args.schema.read_text()) if args.schema else None

    started = time.perf_counter()
    llm = vllm.LLM.from_engine_args(engine_args)
    result: dict[str, Any] = {
        "provenance": importlib.import_module("provenance").provenance(),
        "engine_start_s": time.perf_counter() - started,
        "engine_args": sys.argv[split + 1 :],
        "runs": {},
    }
    for spec in args.run:
        name, path, *count = spec.split(":")
        rows = load_prompts(Path(path), int(count[0]) if count else None)
        run_schema = schema if name.startswith("schema") else None
        if run_schema is not None and name.endswith("_nobounds"):
            # The grammar without the strings' maxLength (engine.string_bounds false).
            run_schema = importlib.import_module("consumer.prompts").without_string_bounds(schema)
        # Warm-up on prompts of the run itself (compiles the grammar, first CUDA-graph sizes);
        # the cache reset inside timed_run keeps it from helping the timed pass.
        knobs = (run_schema, args.schema_max_tokens, args.schema_temperature)
        timed_run(llm, vllm, rows[:WARMUP_PROMPTS], *knobs)
        result["runs"][name] = timed_run(llm, vllm, rows, *knobs)
        result["runs"][name]["file"] = path
        print(name, json.dumps(result["runs"][name]), flush=True)
        write_json(args.output_json, result)


if __name__ == "__main__":
    main()
