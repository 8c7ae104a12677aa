"""``evalstream-local``: local infrastructure for development, tests and the demo.

- ``kafka``: a real Apache Kafka broker (KRaft) from Maven Central jars, no Docker.
- ``engine``: the engine simulator (vLLM / Ollama protocols).
- ``demo``: broker + simulator (or your engine) + a worker; publishes synthetic
  candidates, collects the results and prints the summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consumer.backends.registry import BACKENDS
from consumer.logs import plain_text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evalstream-local", description=plain_text(__doc__))
    sub = p.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="run a local Apache Kafka broker in the foreground")
    kafka.add_argument("--data-dir", type=Path, help="keep data here (survives restarts)")
    kafka.add_argument("--port", type=int, help="listener port (default: a free one)")
    kafka.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a broker property over the local defaults (repeatable), e.g. "
        "group.initial.rebalance.delay.ms=3000, the production default",
    )
    kafka.add_argument(
        "--partitions",
        type=int,
        default=8,
        help="partitions of the default requests and results topics, created at start (the "
        "dead-letter topic gets 1); 0 creates none",
    )

    # The simulator and the compose generator own their options (see `... --help`).
    sub.add_parser("engine", help="run the engine simulator in the foreground", add_help=False)
    sub.add_parser("compose", help="docker compose override for N GPUs (--gpus N)", add_help=False)

    demo = sub.add_parser("demo", help="run the whole pipeline locally and print a summary")
    demo.add_argument("--count", type=int, default=2000, help="synthetic requests to evaluate")
    demo.add_argument("--partitions", type=int, default=8)
    demo.add_argument("--profile", default="vllm", help="simulator profile (vllm or ollama)")
    demo.add_argument("--time-scale", type=float, default=4.0, help="simulator speed-up")
    demo.add_argument("--engine-url", help="use this running engine instead of the simulator")
    demo.add_argument("--backend", choices=list(BACKENDS), help="backend of --engine-url")
    demo.add_argument("--model", help="model of --engine-url")
    demo.add_argument("--out", type=Path, default=Path("evalstream-demo-results.sqlite"))
    demo.add_argument("--bootstrap-servers", help="use this broker instead of a local one")
    return p


def _default_topics(partitions: int) -> dict[str, int]:
    """The worker's default topics (name -> partitions); none when ``partitions`` is 0."""
    if partitions <= 0:
        return {}
    from consumer.lanes import INTERACTIVE_TOPIC
    from consumer.settings import KafkaSettings

    defaults = KafkaSettings()
    return {
        defaults.requests_topic: partitions,
        defaults.results_topic: partitions,
        defaults.dlq_topic: 1,
        INTERACTIVE_TOPIC: partitions,
    }


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["engine"]:
        from evalstream_local.simulator.server import main as engine_main

        return engine_main(argv[1:])
    if argv[:1] == ["compose"]:
        from evalstream_local.compose import main as compose_main

        return compose_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "kafka":
        from evalstream_local.broker.serve import serve as serve_kafka

        config = dict(item.partition("=")[::2] for item in args.config)
        if any(not key or not value for key, value in config.items()):
            raise SystemExit(f"--config takes KEY=VALUE, got {args.config}")
        topics = _default_topics(args.partitions)
        return serve_kafka(args.data_dir, args.port, topics, config)
    from evalstream_local.demo import run_demo

    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
