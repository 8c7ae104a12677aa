"""Turns a GGUF model into a Hugging Face folder that vLLM serves with its regular kernels.

Usage: gguf_to_hf.py MODEL.gguf OUT_DIR

transformers reads the GGUF (with the ``gguf`` package): the weights are dequantized (Q4_1 ->
bfloat16), the tokenizer is rebuilt from the file's vocabulary and merges, and the chat template
comes from the file's metadata. vLLM can also load a GGUF file itself, but through its GGUF
kernels, which are slower than its regular ones and would measure those kernels, not evalstream.
The folder is checked before it is used: the tokenizer's eos token is the model's, and the
chat template ends the assistant's turn with it.
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
    # transformers 5.17 took the GGUF's bos token (<|im_start|>) for the tokenizer's eos too;
    # the end of a turn is the model's own eos_token_id (<|im_end|>), as the GGUF says.
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(model.config.eos_token_id)
    out.mkdir(parents=True, exist_ok=True)
    # transformers marks a model read from GGUF as quantized and refuses save_pretrained;
    # the weights are plain bfloat16 by now, so they are written directly.
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # tied to the embeddings (one tensor, stored once)
    safetensors: Any = importlib.import_module("safetensors.torch")
    safetensors.save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "ANSWER"},
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    return {
        "seconds": time.perf_counter() - started,
        "transformers": transformers.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab": len(tokenizer),
        "eos_token": tokenizer.eos_token,
        "eos_token_id": tokenizer.eos_token_id,
        "config_eos_token_id": model.config.eos_token_id,
        "chat_template_renders": rendered,
        "files": sorted(p.name for p in out.iterdir()),
    }


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    summary = convert(Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps(summary, indent=1))
    if summary["eos_token_id"] != summary["config_eos_token_id"]:
        raise SystemExit("the tokenizer's eos token is not the model's")
    if summary["eos_token"] + "\n" not in summary["chat_template_renders"].split("ANSWER", 1)[-1]:
        raise SystemExit("the chat template does not end the assistant's turn with the eos token")


if __name__ == "__main__":
    main()
