"""The main job on embedded defaults: the whole pipeline on one machine.

A local Kafka broker, the engine simulator (or a running vLLM/Ollama), one worker,
synthetic candidates published to the requests topic, results collected into SQLite,
the summary printed and an HTML report with charts written beside the results. Every process
it starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

from evalstream_local.broker.kafka import LocalKafka
from evalstream_local.processes import ManagedProcess
from evalstream_local.topics import create_topics

SIM_MODEL = "evalstream-sim-gemma3-1b"
TOPICS = {
    "requests": "evalstream.requests",
    "results": "evalstream.results",
    "dlq": "evalstream.dlq",
}


def run_demo(args: argparse.Namespace) -> int:
    """Runs the demo described by the ``evalstream-local demo`` flags."""
    work = Path(tempfile.mkdtemp(prefix="evalstream-demo-"))
    print(f"evalstream demo: {args.count} candidates, logs in {work}", flush=True)
    with contextlib.ExitStack() as stack:
        bootstrap = args.bootstrap_servers or _broker(stack, work)
        engine_url, backend, model = _engine(stack, args, work)
        partitions = {TOPICS["requests"]: args.partitions, TOPICS["results"]: args.partitions}
        create_topics(bootstrap, {**partitions, TOPICS["dlq"]: 1})
        worker = ManagedProcess.python(
            "consumer",
            *("--bootstrap-servers", bootstrap, "--group", "evalstream-demo"),
            *("--requests-topic", TOPICS["requests"], "--results-topic", TOPICS["results"]),
            *("--dlq-topic", TOPICS["dlq"], "--metrics-port", "0"),
            *("--backend", backend, "--engine-url", engine_url, "--model", model),
            log_path=work / "worker.log",
        )
        stack.enter_context(worker).start()
        started = time.monotonic()
        distinct = _publish_and_collect(args, bootstrap, work)
        elapsed = time.monotonic() - started
        print(
            f"\nevalstream demo: {distinct}/{args.count} results in {elapsed:.1f}s "
            f"({distinct / elapsed:.1f} req/s end to end through Kafka); "
            f"results in {args.out.resolve()}",
            flush=True,
        )
        _report(args.out)
        return 0 if distinct == args.count else 1


def _publish_and_collect(args: argparse.Namespace, bootstrap: str, work: Path) -> int:
    """Publishes ``args.count`` synthetic candidates and collects their results.

    Returns:
        How many distinct candidates have a result.
    """
    requests, summary = work / "requests.jsonl", work / "summary.json"
    _run(["producer", "synth", "--count", str(args.count), "--seed", "7"], stdout=requests)
    topic = TOPICS["requests"]
    _run(["producer", "publish", str(requests), "--bootstrap-servers", bootstrap, "--topic", topic])
    _run(
        [
            *("producer", "collect", "--bootstrap-servers", bootstrap),
            *("--topic", TOPICS["results"], "--out", str(args.out)),
            *("--expect", str(args.count), "--until-idle", "120"),
            *("--json-summary", str(summary)),
        ]
    )
    collected = json.loads(summary.read_text()) if summary.exists() else {}
    return int(collected.get("distinct", 0))


def _report(results: Path) -> None:
    """Writes the HTML report of the results beside them; a failure is reported, not fatal."""
    import subprocess

    page = results.with_suffix(".html")
    command = [sys.executable, "-m", "producer", "report", str(results), "--out", str(page)]
    if subprocess.call(command, stdout=subprocess.DEVNULL) == 0:
        print(f"evalstream demo: report in {page.resolve()}", flush=True)
    else:
        print("evalstream demo: no report (see the error above)", flush=True)


def _broker(stack: contextlib.ExitStack, work: Path) -> str:
    kafka = LocalKafka(work / "kafka")
    print(
        "starting a local Apache Kafka broker (first run downloads its jars with Maven)...",
        flush=True,
    )
    bootstrap = kafka.start()
    stack.callback(kafka.stop)
    print(f"broker at {bootstrap}", flush=True)
    return bootstrap


def _engine(
    stack: contextlib.ExitStack, args: argparse.Namespace, work: Path
) -> tuple[str, str, str]:
    if args.engine_url:
        return args.engine_url, args.backend or "openai", args.model or "gemma3:1b"
    profile = args.profile
    sim = stack.enter_context(
        ManagedProcess.python(
            "evalstream_local",
            "engine",
            "--profile",
            profile,
            "--port",
            "0",
            "--time-scale",
            str(args.time_scale),
            "--model",
            SIM_MODEL,
            log_path=work / "engine.log",
        )
    )
    url = sim.start("url", timeout=60)
    print(f"engine simulator ({profile} profile, {args.time_scale}x speed) at {url}", flush=True)
    return url, "ollama" if profile == "ollama" else "openai", SIM_MODEL


def _run(module_args: list[str], stdout: Path | None = None) -> None:
    import subprocess

    with open(stdout, "wb") if stdout else contextlib.nullcontext() as out:
        code = subprocess.call([sys.executable, "-m", *module_args], stdout=out)
    if code != 0:
        raise SystemExit(f"{' '.join(module_args[:2])} failed with exit code {code}")
