"""The py-spy profiles of ``cpu_overhead --profile``: recorded runs and their summaries.

`profile` makes two runs with py-spy attached to the worker (100 Hz, non-blocking) on a topic
holding the requests `PROFILE_REPEAT` times over: the ``instant`` engine at a fixed window of
256, and the ``vllm`` profile at ``--time-scale 10`` with a fixed window of 128. Each writes a
flame graph (``cpu_profile*.svg``) and, through `summarize_profile`, the top functions by self
and inclusive samples (``cpu_profile*.txt``).
"""

from __future__ import annotations

import collections
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalstream_local.processes import ManagedProcess

# benchmarks/ is not a package (no __init__.py), so mypy names benchmarks/harness.py `harness`
# while Python, running `-m benchmarks.cpu_overhead`, imports it as `benchmarks.harness`.
if TYPE_CHECKING:
    import cpu_run
    import harness
    import reporting
    import sampling
else:
    cpu_run = importlib.import_module("benchmarks.cpu_run")
    harness = importlib.import_module("benchmarks.harness")
    reporting = importlib.import_module("benchmarks.reporting")
    sampling = importlib.import_module("benchmarks.sampling")

PY_SPY = Path(sys.executable).with_name("py-spy")
PROFILE_REPEAT = 3  # the profiled worker must stay busy for the whole py-spy recording


class Profiler:
    """Worker runs under py-spy, over the run's backlog published `PROFILE_REPEAT` times."""

    def __init__(self, run: cpu_run.Run) -> None:
        self.run = run
        self._repeated_published = False

    def record(
        self, case: cpu_run.Case, url: str, engine_pid: int, out: Path, seconds: float
    ) -> dict[str, Any]:
        """Runs a worker on the repeated backlog with py-spy attached for ``seconds``."""
        run = self.run
        topics = harness.Topics.fresh(self._repeated_topic(), case.name)
        topics.create(run.bootstrap)
        reader = sampling.ResultReader(run.bootstrap, topics.results, timings=True)
        process = run.start(case, topics, url)
        tracer = sampling.Tracer(run.watched_pids(process.pid, engine_pid))
        try:
            # Attached once the first result is out: imports and the group join are over.
            sampling.drive(reader, 1, tracer, process.alive, cpu_run.RUN_TIMEOUT_S)
            tracer.sample(reader.messages)
            spies = [self._spy(process.pid, out, seconds, f) for f in ("flamegraph", "raw")]
            while any(spy.alive() for spy in spies) and process.alive():
                reader.poll(0.25)
                tracer.sample(reader.messages)
            for spy in spies:
                spy.wait(60)
        finally:
            process.stop()
            reader.close()
        return cpu_run.summary(case, reader, tracer, (1, reader.messages))

    def _repeated_topic(self) -> str:
        topic = "bench.cpu.profile-requests"
        if not self._repeated_published:
            harness.Topics.fresh(topic, "setup").create(self.run.bootstrap)
            for _ in range(PROFILE_REPEAT):
                harness.publish(self.run.bootstrap, topic, self.run.file)
            self._repeated_published = True
        return topic

    def _spy(self, pid: int, out: Path, seconds: float, fmt: str) -> ManagedProcess:
        bench = self.run.bench
        path = out.with_suffix(".svg") if fmt == "flamegraph" else bench.work / "py-spy.raw"
        command = [str(PY_SPY), "record", "--pid", str(pid), "--rate", "100", "--nonblocking"]
        command += ["--duration", str(round(seconds)), "--format", fmt, "-o", str(path)]
        command += ["--threads"] if fmt == "raw" else []
        spy = ManagedProcess(command, log_path=bench.log(f"py-spy-{fmt}"))
        bench.process(spy).start()
        return spy


def profile(
    bench: harness.Bench, run: cpu_run.Run, seconds: float, url: str, engine_pid: int
) -> dict[str, Any]:
    """The two py-spy runs: instant engine (window 256) and vllm x10 (window 128)."""
    num = cpu_run.num
    out: dict[str, Any] = {}
    profiler = Profiler(run)
    vllm_url, vllm = bench.simulator("vllm", 10.0)
    runs = (
        ("cpu_profile", url, engine_pid, "instant engine, fixed window 256", "256"),
        ("cpu_profile_vllm", vllm_url, vllm.pid, "vllm x10, fixed window 128", "128"),
    )
    for name, engine_url, pid, label, window in runs:
        case = cpu_run.Case(f"profile-{window}", ("--window-policy", "fixed", "--window", window))
        target = reporting.RESULTS_DIR / name
        measured = profiler.record(case, engine_url, pid, target, seconds)
        raw = bench.work / "py-spy.raw"
        top = summarize_profile(raw, target.with_suffix(".txt"), label) if raw.exists() else []
        if raw.exists():
            raw.rename(bench.work / f"{name}.raw")
        out[name] = {"label": label, "run": measured, "top": top}
        cpu = measured.get("cpu", {})
        print(
            f"  {label}: {num(cpu.get('requests_per_s'))} req/s, worker "
            f"{num(cpu.get('us_per_request', {}).get('worker'))} us/req, "
            f"{num(cpu.get('cores_used', {}).get('worker'), 2)} cores; wrote "
            f"{target.with_suffix('.svg').name}, {target.with_suffix('.txt').name}",
            flush=True,
        )
    return out


# Frames every stack of a thread passes through: their inclusive share says nothing.
_ENTRY_FRAMES = (
    "<frozen runpy>",
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
    "threading.py",
    "consumer/__main__.py",
)


def summarize_profile(raw: Path, out: Path, label: str, top: int = 25) -> list[dict[str, Any]]:
    """Aggregates py-spy's collapsed stacks into ``out``; returns the rows it lists.

    Lists: samples per thread; the top functions by self samples; the project's own functions
    (``consumer/``) by inclusive samples; the rest by inclusive samples; self samples per
    module (a library by its top package). Shares are of all non-idle samples.
    """
    counters: dict[str, collections.Counter[str]] = {
        name: collections.Counter() for name in ("thread", "self", "project", "inclusive", "module")
    }
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        count = int(count_text)
        total += count
        counters["thread"][frames[0].split(": ", 1)[-1]] += count  # "thread (tid): name"
        functions = [_function(f) for f in frames[1:]]
        if functions:
            counters["self"][functions[-1]] += count
            counters["module"][_module(functions[-1])] += count
        for function in set(functions):
            if not any(entry in function for entry in _ENTRY_FRAMES):
                kind = "project" if "(consumer/" in function else "inclusive"
                counters[kind][function] += count
    titles = {
        "thread": "by thread",
        "self": f"top {top} functions by self samples",
        "project": f"top {top} project functions (consumer/) by inclusive samples",
        "inclusive": f"top {top} library functions by inclusive samples",
        "module": "self samples by module (libraries by top package)",
    }
    lines = [f"py-spy record --rate 100 --nonblocking: {total} non-idle samples ({label})"]
    rows = []
    for kind, counter in counters.items():
        lines += ["", f"{titles[kind]}:"]
        for name, count in counter.most_common(top):
            lines.append(f"  {100 * count / total:5.1f}%  {count:6d}  {name}")
            rows.append({"by": kind, "name": name, "share": round(count / total, 4)})
    out.write_text("\n".join(lines) + "\n")
    return rows


def _function(frame: str) -> str:
    # "name (path/to/module.py:123)" -> "name (path/to/module.py)": lines of one function merge.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def _module(function: str) -> str:
    path = function.rpartition(" (")[2].rstrip(")").removesuffix(".py")
    parts = path.split("/")
    return ".".join(parts) if parts[0] == "consumer" else parts[0]
