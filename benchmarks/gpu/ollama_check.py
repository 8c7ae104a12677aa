"""Whether Ollama runs the model on the GPU: the evidence, and a loud failure without it.

Reads the server's log (the devices it found, the backends it loaded, the layers it offloaded)
and ``/api/ps`` after one request (``OLLAMA_PS``, with the reply in ``OLLAMA_REPLY``). Passes
when a GPU device was found, every layer was offloaded and the loaded model lies wholly in GPU
memory (``size_vram`` equals ``size``). Writes the evidence to OUT_JSON either way.

Usage: ollama_check.py SERVER_LOG MODEL SLOTS OUT_JSON
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from benchlib import write_json

# slog's text format: key=value, the value quoted when it holds blanks.
_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_LOADED = re.compile(r"load_backend: loaded (\S+) backend from (\S+)")


def log_pairs(line: str) -> dict[str, str]:
    """The key=value pairs of one slog line, quotes removed."""
    return {key: value.strip('"') for key, value in _PAIR.findall(line)}


def evidence(log: str, ps: dict[str, Any], model: str) -> dict[str, Any]:
    """What the log and /api/ps say about where the model runs."""
    lines = log.splitlines()
    devices = [log_pairs(line) for line in lines if 'msg="inference compute"' in line]
    offloads = [tuple(map(int, m.groups())) for m in map(_OFFLOADED.search, lines) if m]
    loaded = [m.groups() for m in map(_LOADED.search, lines) if m]
    running: dict[str, Any] = next(
        (m for m in ps.get("models") or [] if m.get("name") in (model, f"{model}:latest")), {}
    )
    return {
        "devices": [
            {k: d.get(k) for k in ("library", "name", "description", "compute", "total", "libdirs")}
            for d in devices
        ],
        "backends_loaded": sorted({f"{name} {path}" for name, path in loaded}),
        "offloaded_layers": list(offloads[-1]) if offloads else None,
        "size": running.get("size"),
        "size_vram": running.get("size_vram"),
        "context_length": running.get("context_length"),
    }


def failures(found: dict[str, Any], reply_ok: bool) -> list[str]:
    """Why the model does not run wholly on the GPU (empty when it does)."""
    why = []
    if not reply_ok:
        why.append("the test request got no reply")
    if not any((d.get("library") or "cpu").lower() != "cpu" for d in found["devices"]):
        why.append("no GPU among the devices the server found")
    layers = found["offloaded_layers"]
    if not layers or layers[0] != layers[1] or layers[0] == 0:
        why.append(f"not every layer offloaded: {layers}")
    if not found["size"] or found["size_vram"] != found["size"]:
        why.append(f"size_vram {found['size_vram']} != size {found['size']}")
    return why


def main() -> None:
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    log_path, model, slots, out = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
    log = Path(log_path).read_text(errors="replace") if Path(log_path).exists() else ""
    try:
        ps = json.loads(os.environ.get("OLLAMA_PS") or "{}")
        reply = json.loads(os.environ.get("OLLAMA_REPLY") or "{}")
    except ValueError:
        ps, reply = {}, {}
    found = evidence(log, ps, model)
    why = failures(found, bool((reply.get("message") or {}).get("content")))
    result = found | {"slots": int(slots), "ok": not why, "failures": why, "log": log_path}
    write_json(out, result)
    for device in found["devices"]:
        print(f"device: {device}")
    print(f"backends loaded: {found['backends_loaded']}")
    print(
        f"offloaded layers: {found['offloaded_layers']}; size {found['size']}, "
        f"size_vram {found['size_vram']}, context {found['context_length']}, slots {slots}"
    )
    if why:
        raise SystemExit("OLLAMA CHECK FAILED: " + "; ".join(why))
    print("ollama check: the model runs wholly on the GPU")


if __name__ == "__main__":
    main()
