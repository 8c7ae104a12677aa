"""``evalstream-producer``: the upstream and downstream tools of evalstream.

Subcommands: ``schema`` (print the wire contract), ``synth`` (synthetic requests), ``publish``
(validate and produce a file of requests), ``collect`` (store de-duplicated results), ``report``
(an HTML report of collected results), ``status`` (consumer lag, rate and ETA). The command
handlers live in `producer.cli`; this module only parses.

The bootstrap servers default to ``$EVALSTREAM_KAFKA__BOOTSTRAP_SERVERS`` (the worker's variable,
so one setting serves both), then the deprecated ``$KAFKA_BOOTSTRAP`` (with a one-line notice on
stderr), then ``localhost:9092``. This module is the only one that reads the environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from consumer.schemas import json_schemas
from producer import cli
from producer.publish import KeyMode
from producer.sinks import SinkFormat
from producer.source import InputKind
from producer.synth import DEFAULT_JOBS, DEFAULT_MAX_TOKENS
from producer.validation import RequestFormat

REQUESTS_TOPIC = "evalstream.requests"
RESULTS_TOPIC = "evalstream.results"
DLQ_TOPIC = "evalstream.dlq"
DEFAULT_IDLE_S = 30.0
# With --expect the run is known to be under way, so silence may last longer (an engine warming
# up, a worker restarting); five minutes without a single result or dead letter means it stopped.
DEFAULT_EXPECT_IDLE_S = 300.0
BOOTSTRAP_ENV = "EVALSTREAM_KAFKA__BOOTSTRAP_SERVERS"
DEPRECATED_BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP"
DEFAULT_BOOTSTRAP = "localhost:9092"
Handler = Callable[[argparse.Namespace], int]


def _positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    """An argparse type: a number greater than 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def _kafka_arguments(parser: argparse.ArgumentParser, topic: str | None) -> None:
    """Adds the connection options every Kafka subcommand takes (``--topic`` unless None)."""
    parser.add_argument(
        "--bootstrap-servers",
        help=f"Kafka bootstrap servers (default: ${BOOTSTRAP_ENV}, else {DEFAULT_BOOTSTRAP}; "
        f"${DEPRECATED_BOOTSTRAP_ENV} still works but is deprecated)",
    )
    if topic is not None:
        parser.add_argument("--topic", default=topic, help=f"topic (default: {topic})")
    parser.add_argument(
        "-X",
        dest="kafka_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka option, repeatable (e.g. -X security.protocol=SASL_SSL)",
    )


def _add_schema(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("schema", help="print the JSON Schemas of the wire contract")
    parser.add_argument("--name", choices=sorted(json_schemas()), help="print only this schema")
    parser.set_defaults(handler=cli.run_schema)


def _add_synth(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("synth", help="write synthetic evaluation requests as JSONL")
    parser.add_argument("--count", type=_positive_int, required=True, help="how many requests")
    parser.add_argument("--seed", type=int, help="random seed; the same seed gives the same output")
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=DEFAULT_JOBS,
        help=f"distinct job postings (default: {DEFAULT_JOBS})",
    )
    parser.add_argument(
        "--batch-format",
        action="store_true",
        help="write OpenAI batch input lines instead of native requests",
    )
    parser.add_argument(
        "--timestamps", action="store_true", help="set created_at to the generation time"
    )
    parser.add_argument(
        "--model",
        help="model to route to, one the workers serve (default: none, so the workers' "
        "default model answers; batch lines then carry no body.model)",
    )
    parser.add_argument(
        "--max-tokens",
        type=_positive_int,
        default=DEFAULT_MAX_TOKENS,
        help=f"max_tokens of batch lines (default: {DEFAULT_MAX_TOKENS})",
    )
    parser.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    parser.set_defaults(handler=cli.run_synth)


def _add_publish(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("publish", help="validate a file of requests and publish it")
    parser.add_argument("file", metavar="FILE", help="JSONL or CSV file, or - for stdin")
    _kafka_arguments(parser, REQUESTS_TOPIC)
    parser.add_argument(
        "--format",
        type=RequestFormat,
        choices=list(RequestFormat),
        default=RequestFormat.AUTO,
        help="request shape (default: per line)",
    )
    parser.add_argument(
        "--input",
        type=InputKind,
        choices=list(InputKind),
        default=InputKind.JSONL,
        help="input layout (default: jsonl)",
    )
    parser.add_argument(
        "--csv-map",
        metavar="COL=FIELD,...",
        help="CSV column to request field, e.g. resume=candidate.text",
    )
    parser.add_argument("--rate", type=_positive_float, help="messages per second at most")
    parser.add_argument(
        "--key",
        type=KeyMode,
        choices=list(KeyMode),
        default=KeyMode.ID,
        help="message key: the request id (default) or none",
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="K=V",
        help="header added to every message, repeatable",
    )
    parser.add_argument("--rejects", metavar="FILE", help="write rejected lines here as JSONL")
    parser.add_argument(
        "--allow-rejects", action="store_true", help="exit 0 even if some lines were rejected"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=cli.run_publish)


def _add_collect(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("collect", help="store de-duplicated results and summarise them")
    _kafka_arguments(parser, RESULTS_TOPIC)
    parser.add_argument("--out", required=True, help="output file (.db/.sqlite or .jsonl)")
    parser.add_argument(
        "--format",
        type=SinkFormat,
        choices=list(SinkFormat),
        default=SinkFormat.AUTO,
        help="output format (default: from --out)",
    )
    parser.add_argument(
        "--expect",
        type=_positive_int,
        help="stop after N distinct requests have an outcome (a result or a dead letter)",
    )
    dlq = parser.add_mutually_exclusive_group()
    dlq.add_argument(
        "--dlq-topic",
        help=f"dead-letter topic read beside the results, so dead letters count toward --expect "
        f"(default: {DLQ_TOPIC}, skipped with a warning where it does not exist)",
    )
    dlq.add_argument("--no-dlq", action="store_true", help="read the results topic only")
    idle = parser.add_mutually_exclusive_group()
    idle.add_argument(
        "--until-idle",
        type=_positive_float,
        metavar="S",
        help=f"stop after S seconds without a result or dead letter (default: {DEFAULT_IDLE_S:g}; "
        f"{DEFAULT_EXPECT_IDLE_S:g} with --expect)",
    )
    idle.add_argument(
        "--no-idle-limit",
        action="store_true",
        help="with --expect: wait for ever for the missing outcomes",
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the earliest offset when the group has none committed",
    )
    parser.add_argument(
        "--group",
        help="consumer group that commits (default: a fresh one that "
        "reads from the beginning and commits nothing)",
    )
    parser.add_argument("--json-summary", metavar="FILE", help="also write the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=cli.run_collect)


def _add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "report", help="write an HTML report with charts of a collect results file"
    )
    parser.add_argument(
        "results", metavar="RESULTS", help="collect output (.sqlite, .parquet or .jsonl)"
    )
    parser.add_argument(
        "--out",
        default="report.html",
        help="HTML file to write; the charts also go to <stem>-files/*.png (default: report.html)",
    )
    parser.set_defaults(handler=cli.run_report)


def _add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("status", help="consumer-group lag, rate and ETA")
    _kafka_arguments(parser, REQUESTS_TOPIC)
    parser.add_argument("--group", required=True, help="the workers' consumer group")
    parser.add_argument("--watch", action="store_true", help="refresh in place until Ctrl-C")
    parser.add_argument(
        "--interval",
        type=float,
        default=5.0,
        help="seconds between samples (default: 5; 0 = one sample, no rate)",
    )
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="take the rate from this Prometheus instead of offset deltas",
    )
    parser.set_defaults(handler=cli.run_status)


def _add_topics(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("topics", help="create or describe the topics")
    parser.add_argument("action", choices=["create", "describe"])
    parser.add_argument(
        "topics", nargs="*", help="topic names (default: the requests, results and DLQ topics)"
    )
    _kafka_arguments(parser, None)
    parser.add_argument(
        "--partitions", type=int, default=8, help="create: partitions each (default: 8)"
    )
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=-1,
        help="create: replicas of each partition (default: the broker's default)",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        help="create: the topics' max.message.bytes (default: the broker's)",
    )
    parser.set_defaults(handler=cli.run_topics)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="evalstream-producer",
        description="Publish evaluation requests to Kafka, collect results, watch progress.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_schema,
        _add_synth,
        _add_topics,
        _add_publish,
        _add_collect,
        _add_report,
        _add_status,
    ):
        add(commands)
    return parser


def _collect_bounds(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fills in collect's idle limit and dead-letter topic (None: no limit, no topic).

    ``dlq_explicit`` records whether the user named the topic: a named one must exist, the
    default may be absent.
    """
    if args.no_idle_limit and args.expect is None:
        parser.error("--no-idle-limit needs --expect (without it collect would never stop)")
    if args.no_idle_limit:
        args.until_idle = None
    elif args.until_idle is None:
        args.until_idle = DEFAULT_EXPECT_IDLE_S if args.expect is not None else DEFAULT_IDLE_S
    args.dlq_explicit = args.dlq_topic is not None
    if args.no_dlq:
        args.dlq_topic = None
    elif args.dlq_topic is None:
        args.dlq_topic = DLQ_TOPIC


def bootstrap_from_env(environ: Mapping[str, str]) -> str:
    """The bootstrap servers the environment names, else `DEFAULT_BOOTSTRAP`.

    The old variable still works, with a one-line notice on stderr, so scripts keep running
    while they move to the name the worker reads.
    """
    if environ.get(BOOTSTRAP_ENV):
        return environ[BOOTSTRAP_ENV]
    if environ.get(DEPRECATED_BOOTSTRAP_ENV):
        print(
            f"warning: ${DEPRECATED_BOOTSTRAP_ENV} is deprecated; "
            f"set ${BOOTSTRAP_ENV} instead (the worker reads it too)",
            file=sys.stderr,
        )
        return environ[DEPRECATED_BOOTSTRAP_ENV]
    return DEFAULT_BOOTSTRAP


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line with every default filled in (the environment's included)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "bootstrap_servers") and args.bootstrap_servers is None:
        args.bootstrap_servers = bootstrap_from_env(os.environ)
    if getattr(args, "command", None) == "collect":
        _collect_bounds(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one subcommand and returns the process exit status."""
    args = parse_args(argv)
    handler: Handler = args.handler
    return cli.dispatch(handler, args)


if __name__ == "__main__":
    sys.exit(main())
