"""The fault suite under load: the records it writes, and the load it stops."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest

from tests.integration.pipeline import wait_until

under_load = importlib.import_module("benchmarks.faults_under_load")
pytestmark = pytest.mark.timeout(60)

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.faults.test_a" name="test_ok" time="1.234"/>
<testcase classname="tests.faults.test_a" name="test_bad" time="2"><failure message="x"/></testcase>
<testcase classname="tests.faults.test_b" name="test_broken" time="0"><error/></testcase>
<testcase classname="tests.faults.test_b" name="test_off" time="0"><skipped message="z"/></testcase>
</testsuite></testsuites>
"""


def gone(pid: int) -> bool:
    """Whether ``pid`` no longer names a running process (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_each_test_outcome_is_read_from_the_junit_xml(tmp_path: Path) -> None:
    (tmp_path / "run.xml").write_text(JUNIT)
    outcomes = under_load.junit_outcomes(tmp_path / "run.xml")
    assert outcomes == {
        "tests.faults.test_a::test_ok": {"outcome": "passed", "duration_s": 1.23},
        "tests.faults.test_a::test_bad": {"outcome": "failed", "duration_s": 2.0},
        "tests.faults.test_b::test_broken": {"outcome": "error", "duration_s": 0.0},
        "tests.faults.test_b::test_off": {"outcome": "skipped", "duration_s": 0.0},
    }
    assert under_load.junit_outcomes(tmp_path / "missing.xml") == {}


def test_stop_ends_the_hogs_and_the_unit_run_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(under_load, "UNIT_SUITE", ("sleep", "600"))
    load = under_load.Load(2, True, tmp_path)
    load.start()
    try:
        assert wait_until(lambda: load._unit is not None, 10)
        pids = [p.pid for p in load._processes] + [load._unit.pid]
        assert len(pids) == 3
        assert not any(gone(pid) for pid in pids)
    finally:
        load.stop()
    assert all(gone(pid) for pid in pids)
    assert load.unit_runs == {}  # the run cut short counts as neither passed nor failed


def test_a_run_appends_its_record_and_the_exit_code_follows_the_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for pytest: writes the JUnit XML it is given, exits as $FAKE_EXIT says.
    script = (
        "import os, sys; path = sys.argv[-1].split('=', 1)[1]; "
        f"open(path, 'w').write({JUNIT!r}); sys.exit(int(os.environ['FAKE_EXIT']))"
    )
    monkeypatch.setattr(under_load, "FAULT_SUITE", (sys.executable, "-c", script))
    monkeypatch.setattr(under_load, "UNIT_SUITE", ("sleep", "600"))
    output = tmp_path / "runs.jsonl"
    monkeypatch.setenv("FAKE_EXIT", "0")
    assert under_load.main(["--runs", "2", "--hogs", "1", "--output", str(output)]) == 0
    monkeypatch.setenv("FAKE_EXIT", "1")
    assert under_load.main(["--runs", "1", "--hogs", "0", "--output", str(output)]) == 1
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(r["run"], r["of"], r["passed"], r["exit_code"]) for r in records] == [
        (1, 2, True, 0),
        (2, 2, True, 0),
        (1, 1, False, 1),
    ]
    first = records[0]
    assert set(first["source"]) == {"commit", "uncommitted", "dirty"}
    assert first["started_at"].endswith("+00:00")
    assert first["duration_s"] >= 0
    assert first["load"]["hogs"] == 1
    assert first["load"]["unit_loop"] is True
    assert first["counts"] == {"passed": 1, "failed": 1, "error": 1, "skipped": 1}
    assert len(first["tests"]) == 4
    assert os.path.exists(first["log"])
