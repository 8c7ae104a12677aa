"""Where an Ollama server's time goes per token: the same prompt with no format, format "json" and a
JSON schema, one request alone and N at once (README "(d) Ollama with CUDA", the probe after the
e2e runs). Standard library only: it runs with the device's system Python.

    python3 benchmarks/gpu/ollama_probe.py [--url http://127.0.0.1:11434] [--model smollm2]
        [--parallel 4] [--out FILE.json]

Per request it reports Ollama's own counters (`eval_count`, `eval_duration`,
`prompt_eval_count`, `prompt_eval_duration`) and per case the decode tokens/s of one request and
the aggregate of N concurrent ones.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

PROMPT = "Write a detailed essay about the history of cats, in about 400 words."
SCHEMA = {
    "type": "object",
    "properties": {"essay": {"type": "string", "maxLength": 1500}},
    "required": ["essay"],
}
FORMATS: dict[str, object] = {"none": None, "json": "json", "schema": SCHEMA}


def generate(url: str, model: str, fmt: object, num_predict: int) -> dict[str, float]:
    body: dict[str, object] = {
        "model": model,
        "prompt": PROMPT,
        "stream": False,
        "options": {"num_predict": num_predict, "temperature": 0},
    }
    if fmt is not None:
        body["format"] = fmt
    request = urllib.request.Request(
        f"{url}/api/generate", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        reply = json.load(response)
    return {
        "eval_count": reply["eval_count"],
        "eval_s": reply["eval_duration"] / 1e9,
        "prompt_eval_count": reply.get("prompt_eval_count", 0),
        "prompt_eval_s": reply.get("prompt_eval_duration", 0) / 1e9,
    }


def case(url: str, model: str, fmt: object, parallel: int, num_predict: int) -> dict[str, object]:
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        replies = list(pool.map(lambda _: generate(url, model, fmt, num_predict), range(parallel)))
    wall = time.perf_counter() - started
    tokens = sum(r["eval_count"] for r in replies)
    return {
        "parallel": parallel,
        "wall_s": round(wall, 3),
        "tokens": tokens,
        "aggregate_tok_per_s": round(tokens / wall, 1),
        "per_request_tok_per_s": [round(r["eval_count"] / r["eval_s"], 1) for r in replies],
        "replies": replies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:11434")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--num-predict", type=int, default=300)
    parser.add_argument("--out")
    args = parser.parse_args()
    results: dict[str, object] = {}
    for name, fmt in FORMATS.items():
        generate(args.url, args.model, fmt, 8)  # warm: load the model, compile the grammar once
        for parallel in (1, args.parallel):
            row = case(args.url, args.model, fmt, parallel, args.num_predict)
            results[f"{name}-x{parallel}"] = row
            print(
                f"{name:6} x{parallel}: {row['aggregate_tok_per_s']:8.1f} tok/s aggregate, "
                f"per request {row['per_request_tok_per_s']}",
                flush=True,
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
