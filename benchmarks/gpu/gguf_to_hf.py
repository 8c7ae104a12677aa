"""Turns a GGUF model into a Hugging Face folder that vLLM serves with its regular kernels.

Usage: gguf_to_hf.py MODEL.gguf OUT_DIR

transformers reads the GGUF (with the ``gguf`` package): the weights are dequantized (Q4_1 ->
bfloat16), the tokenizer is rebuilt from the file's vocabulary and merges, and the chat template
comes from the file's metadata. vLLM can also load a GGUF file itself, but through its GGUF
kernels, which are slower than its regular ones and would measure those kernels, not evalstream.
The folder is checked before it is used: the chat template renders and the tokenizer's end of
turn is the model's end-of-sequence token.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any


def convert(gguf: Path, out: Path) -> dict[str, Any]:
    """Writes ``out`` (config, safetensors, tokenizer, generation config); returns a summary."""
    torch: Any = importlib.import_module("torch")
    transformers: Any = importlib.import_module("transformers")
    started = time.perf_counter()
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, torch_dtype=torch.bfloat16
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return {
        "seconds": time.perf_counter() - started,
        "transformers": transformers.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab": len(tokenizer),
        "eos_token": tokenizer.eos_token,
        "chat_template_renders": rendered,
        "files": sorted(p.name for p in out.iterdir()),
    }


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    summary = convert(Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps(summary, indent=1))
    if summary["eos_token"] not in summary["chat_template_renders"]:
        raise SystemExit("the chat template does not end turns with the eos token")


if __name__ == "__main__":
    main()
