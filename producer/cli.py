"""Handlers of the ``evalstream-producer`` subcommands: arguments in, exit status out.

Exit statuses: 0 success; 1 rejected lines (``publish`` without ``--allow-rejects``), unusable
input, fewer results than ``--expect`` (``collect``) or an unreadable group (``status``); 2 a
delivery failure (``publish``) or a file ``report`` cannot read as results; 130 interrupted;
141 the reader of stdout went away.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import KafkaException
from rich.console import Console, Group
from rich.live import Live

from consumer.kafka_log import KafkaLog
from consumer.schemas import json_schemas
from producer import topics
from producer.collect import ResultCollector
from producer.csv_input import CsvMapping
from producer.errors import InputError, ProducerError, ReportInputError
from producer.file_publish import FilePublisher, RejectLog
from producer.progress import ProgressDisplay
from producer.publish import RequestPublisher
from producer.result_reader import ResultReader
from producer.sinks import open_sink, sink_appends
from producer.source import InputFile
from producer.status import GroupStatus, RateWindow, prometheus_rate, render_status
from producer.synth import RequestSynthesizer, batch_line
from producer.topic_check import cluster_topics, require_topic, topic_problem
from producer.validation import LineValidator

EXIT_OK, EXIT_FAILED, EXIT_UNDELIVERED = 0, 1, 2
# ``report`` answers an unreadable results file with argparse's status for a bad argument.
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141
# The command line waits a minute for an acknowledgement, not librdkafka's five.
CLI_PRODUCER_DEFAULTS = {"message.timeout.ms": "60000"}
FLUSH_TIMEOUT_S = 75.0


def dispatch(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Runs a handler, turning expected failures into a message and an exit status."""
    try:
        return handler(args)
    except (ProducerError, KafkaException, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _silence_stdout() -> None:
    """Points stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def parse_pairs(items: Sequence[str], option: str) -> dict[str, str]:
    """Parses repeated ``KEY=VALUE`` options.

    Raises:
        InputError: An item has no ``=`` or an empty key.
    """
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{option}: expected KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value
    return pairs


@functools.cache
def _kafka_log(bootstrap: str) -> KafkaLog:
    """The process's `KafkaLog` for a broker address (each one filters the one shared logger)."""
    return KafkaLog(bootstrap)


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``-X`` options, and librdkafka's log through `KafkaLog` (as the worker's clients do):
    a broker that goes away mid-run is one line now and then, not a line per attempt."""
    options: dict[str, Any] = parse_pairs(args.kafka_options, "-X")
    options["logger"] = _kafka_log(args.bootstrap_servers).logger
    return options


def run_schema(args: argparse.Namespace) -> int:
    """``schema``: prints every JSON Schema as one object, or the one named."""
    schemas = json_schemas()
    document = schemas[args.name] if args.name else schemas
    print(json.dumps(document, indent=2))
    return EXIT_OK


@contextmanager
def _output(path: str) -> Iterator[TextIO]:
    """Stdout for ``-``, else a fresh UTF-8 file."""
    if path == "-":
        yield sys.stdout
        return
    with Path(path).open("w", encoding="utf-8") as stream:
        yield stream


def run_synth(args: argparse.Namespace) -> int:
    """``synth``: writes synthetic requests (or batch input lines) as JSONL."""
    synthesizer = RequestSynthesizer(
        args.seed,
        args.jobs,
        timestamps=args.timestamps,
        model=None if args.batch_format else args.model,
    )
    with _output(args.output) as stream:
        for request in synthesizer.requests(args.count):
            if args.batch_format:
                line = batch_line(request, args.model, args.max_tokens)
                stream.write(line.model_dump_json() + "\n")
            else:
                stream.write(request.model_dump_json(exclude_none=True) + "\n")
    return EXIT_OK


def run_topics(args: argparse.Namespace) -> int:
    """``topics``: create or describe the deployment's topics."""
    return topics.run_topics(args, client_options(args))


def run_publish(args: argparse.Namespace) -> int:
    """``publish``: validates the input, publishes the valid lines, reports the rest."""
    headers = list(parse_pairs(args.header, "--header").items())
    options: dict[str, Any] = {**CLI_PRODUCER_DEFAULTS, **client_options(args)}
    source = InputFile(
        args.file,
        LineValidator(args.format),
        kind=args.input,
        mapping=CsvMapping.parse(args.csv_map),
    )
    problem = topic_problem(args.bootstrap_servers, args.topic, options)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_UNDELIVERED
    publisher = RequestPublisher(args.bootstrap_servers, args.topic, key=args.key, **options)
    progress = ProgressDisplay("publishing", source.count, enabled=not args.no_progress)
    with RejectLog(args.rejects) as rejects, progress:
        runner = FilePublisher(
            publisher, rejects, headers=headers, rate=args.rate, flush_timeout=FLUSH_TIMEOUT_S
        )
        report = runner.run(source, progress)
    print(report.render())
    if report.failed:
        print(
            f"error: {report.failed:,} message(s) not delivered to {args.topic}: "
            f"{report.first_error or 'no acknowledgement in time'}",
            file=sys.stderr,
        )
        return EXIT_UNDELIVERED
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report.rejected and not args.allow_rejects else EXIT_OK


def _report_invalid(partition: int, offset: int, reason: str) -> None:
    """Warns about a results-topic message that is not a result."""
    print(
        f"warning: partition {partition} offset {offset}: not a result: {reason}", file=sys.stderr
    )


def _collect_topics(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """Checks the topics collect reads before any output exists; drops an absent default DLQ.

    Raises:
        BrokerError: Kafka does not answer, or the results topic (or a named DLQ) is missing.
    """
    known = cluster_topics(args.bootstrap_servers, options)
    require_topic(args.topic, args.bootstrap_servers, known)
    if args.dlq_topic is None or args.dlq_topic in known:
        return
    if args.dlq_explicit:
        require_topic(args.dlq_topic, args.bootstrap_servers, known, option="--dlq-topic")
    print(
        f"warning: dead-letter topic {args.dlq_topic} does not exist on {args.bootstrap_servers};"
        " reading results only (name one with --dlq-topic, or pass --no-dlq)",
        file=sys.stderr,
    )
    args.dlq_topic = None


def run_collect(args: argparse.Namespace) -> int:
    """``collect``: stores distinct results until enough outcomes arrived or the topics went quiet.

    Fails (exit 1) when fewer outcomes than ``--expect`` arrived, or when nothing was stored;
    an output file that would hold nothing is removed rather than left behind empty.
    """
    appends = sink_appends(args.out, args.format)  # an unknown suffix fails before connecting
    options = client_options(args)
    _collect_topics(args, options)
    existed = Path(args.out).exists()
    sink = open_sink(args.out, args.format)
    try:
        reader = ResultReader(
            args.bootstrap_servers,
            args.topic,
            dlq_topic=args.dlq_topic,
            group_id=args.group,
            from_beginning=args.from_beginning,
            on_invalid=_report_invalid,
            **options,
        )
        with (
            reader,
            ProgressDisplay(
                "collecting", args.expect, unit="outcomes", enabled=not args.no_progress
            ) as progress,
        ):
            collector = ResultCollector(
                reader, sink, expect=args.expect, until_idle=args.until_idle
            )
            report = collector.run(progress)
    finally:
        sink.close()
    print(report.render())
    if args.json_summary:
        Path(args.json_summary).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if report.stopped_by == "interrupted":
        return EXIT_INTERRUPTED
    if not report.complete:
        print(f"error: {report.shortfall()}", file=sys.stderr)
        return EXIT_FAILED
    if not report.written:
        _remove_empty(Path(args.out), existed and appends)
        source = args.topic if args.dlq_topic is None else f"{args.topic} or {args.dlq_topic}"
        why = report.nothing_written(f"{source} on {args.bootstrap_servers}", args.out)
        print(f"error: {why}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _remove_empty(path: Path, keep: bool) -> None:
    """Removes an output that holds nothing of this run, unless it holds earlier rows (``keep``)."""
    if keep:
        return
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


def run_report(args: argparse.Namespace) -> int:
    """``report``: an HTML page with charts of a results file, and the charts as PNG files."""
    try:
        from producer.report import write_report  # matplotlib only where a report is asked for
    except ImportError as exc:
        raise InputError(
            f"report needs matplotlib ({exc}): pip install 'evalstream[report]'"
        ) from exc
    try:
        files = write_report(args.results, args.out)
    except ReportInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"report: {files.page} ({len(files.images)} charts, PNGs in {files.images[0].parent})")
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    """``status``: lag per partition, backlog, rate and ETA; refreshed in place with --watch."""
    options = client_options(args)
    require_topic(
        args.topic, args.bootstrap_servers, cluster_topics(args.bootstrap_servers, options)
    )
    window = RateWindow()
    console = Console()
    with GroupStatus(args.bootstrap_servers, args.group, args.topic, **options) as status:

        def frame() -> Group:
            snapshot = status.sample(time.monotonic())
            window.add(snapshot)
            rate: float | None
            if args.prometheus:
                rate, source = prometheus_rate(args.prometheus), "prometheus"
            else:
                rate, source = window.rate(), "committed offsets"
            return render_status(args.topic, args.group, snapshot, rate, source)

        if not args.watch:
            if args.interval > 0 and not args.prometheus:
                window.add(status.sample(time.monotonic()))
                time.sleep(args.interval)  # the rate needs a second sample
            console.print(frame())
            return EXIT_OK
        # Ctrl-C sets a flag instead of raising: an interrupt raised inside a librdkafka call
        # (the offsets query of a frame) could leave the client in the middle of that call.
        stop = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
        try:
            with Live(frame(), console=console, auto_refresh=False) as live:
                while not stop.wait(max(args.interval, 0.5)):
                    live.update(frame(), refresh=True)
        finally:
            signal.signal(signal.SIGINT, previous)
        return EXIT_OK
