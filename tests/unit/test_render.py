"""The tables of README.md and BENCHMARKS.md, rendered from the raw files and checked."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest

render = importlib.import_module("benchmarks.render")
pytestmark = pytest.mark.timeout(20)


def copy_docs(tmp_path: Path) -> Path:
    """The two documents and the raw results, as in the repository."""
    for name in render.DOCUMENTS:
        shutil.copy(render.ROOT / name, tmp_path / name)
    shutil.copytree(render.ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    return tmp_path


def test_the_committed_documents_match_their_raw_files(tmp_path: Path) -> None:
    assert render.main(["--check"], root=copy_docs(tmp_path)) == 0


def test_a_number_edited_by_hand_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_docs(tmp_path)
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    start = text.index("<!-- render:faults -->")
    row = text.index("| 3,000 | 0 |", start)
    readme.write_text(text[:row] + "| 3,001 | 0 |" + text[row + 12 :], encoding="utf-8")

    assert render.main(["--check"], root=root) == 1
    assert "+| " in capsys.readouterr().out  # the diff shows the rendered row

    assert render.main([], root=root) == 0  # rendering puts the raw file's number back
    assert readme.read_text(encoding="utf-8") == text


def test_rendering_twice_changes_nothing(tmp_path: Path) -> None:
    root = copy_docs(tmp_path)
    text = (root / "BENCHMARKS.md").read_text(encoding="utf-8")
    results = root / "benchmarks" / "results"
    assert render.render(render.render(text, results), results) == render.render(text, results)


def test_an_unknown_table_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        render.render("<!-- render:nope -->\n<!-- /render:nope -->", tmp_path)


def test_a_record_from_a_dirty_tree_is_marked(tmp_path: Path) -> None:
    faults = importlib.import_module("benchmarks.render_faults")
    record = {
        "scenario": "engine_hang_10s",
        "requests": 3000,
        "lost": 0,
        "duplicates": 0,
        "recovery_s": 0.5,
        "at": "2026-12-04T03:00:00Z",
        "source": {"commit": "0123456789abcdef", "uncommitted": ["M consumer/x.py"], "dirty": True},
    }
    (tmp_path / "faults.jsonl").write_text(json.dumps(record) + "\n")
    assert "| 2026-12-04, 0123456 (DIRTY TREE) |" in faults.table(tmp_path)


def test_the_latest_full_run_is_shown_with_median_and_range(tmp_path: Path) -> None:
    faults = importlib.import_module("benchmarks.render_faults")

    def record(scenario: str, commit: str, duplicates: int, dirty: bool = False) -> str:
        source = {"commit": commit, "uncommitted": [], "dirty": dirty}
        fields = {"scenario": scenario, "requests": 3000, "lost": 0, "recovery_s": 1.0}
        at = {"at": "2026-12-04T03:00:00Z", "source": source}
        return json.dumps(fields | at | {"duplicates": duplicates})

    lines = [record(k, "a" * 40, d) for k in faults.SCENARIOS for d in (5, 1, 3)]
    lines += [record(k, "b" * 40, 9) for k in faults.SCENARIOS]  # later, but one run only
    lines += [record(k, "c" * 40, 9, dirty=True) for k in faults.SCENARIOS for _ in range(3)]
    (tmp_path / "faults.jsonl").write_text("\n".join(lines) + "\n")

    table = faults.table(tmp_path)
    assert table.startswith("3 runs of every scenario at commit aaaaaaa")
    assert "| 3 | 3,000 | 0 | 3 (1 to 5) | 1.00 (1.00) |" in table


def test_a_gpu_end_to_end_row_comes_from_its_run_folder(tmp_path: Path) -> None:
    gpu_run = importlib.import_module("benchmarks.gpu_run")
    render_gpu = importlib.import_module("benchmarks.render_gpu")
    phase = {
        "results": 90,
        "wall_from_start_s": 30.4,
        "rps_from_start": 3.0,
        "rps_steady_10_90": 3.3,
        "out_tok_per_s_from_start": 525.0,
    }
    data = {
        "offline": {"runs": {"noschema": {"requests": 100, "requests_per_s": 6.0}}},
        "serve": {"points": [{"max_concurrency": 8, "request_throughput": 4.0}]},
        "e2e": {"fixed8": phase},
        "summary": {"latency_s": {"fixed8": {"engine_call": {"p50": 0.71, "p95": 1.04}}}},
    }
    (tmp_path / "call5-results.json").write_text(json.dumps(data))
    logs = "===== /tmp/bench/e2e/fixed8/e2e.log\n$ publish\npublished 120 · rejected 0\n"
    (tmp_path / "call5-logs.txt").write_text(logs)
    run = gpu_run.Run.load(tmp_path, "call5")
    m = run.e2e("fixed window 8 ({n} in {s:.0f} s)", "fixed8")
    assert render_gpu.row(m, 6.0, run.best_serve(), latency=True, steady=False) == (
        "| fixed window 8 (90 of 120 in 30 s) | 3.00 (steady 3.30) | 525 | 0.7 / 1.0 s | "
        "0.50 | 0.75 |"
    )


def test_a_window_sweep_from_a_dirty_tree_is_marked(tmp_path: Path) -> None:
    windows = importlib.import_module("benchmarks.render_windows")
    rates = {"steady_10_90": 10.0, "late_50_90": 11.0}
    ratio = {"best_fixed": "fixed-8", "adaptive_over_best_fixed": 1.0}
    smallest = {"smallest_fixed": "fixed-8", "adaptive_over_smallest_fixed": 1.0}
    data = {
        "machine": {
            "source": {"commit": "0123456789abcdef", "uncommitted": ["M consumer/x.py"]},
            "date": "2026-11-29T01:50:07+00:00",
        },
        "rows": [
            {"config": "fixed-8", "requests_per_s": rates},
            {"config": "adaptive", "requests_per_s": rates, "window_moves": {"limits": [32, 8]}},
        ],
        "ratios": {
            "steady_10_90": {**ratio, **smallest},
            "late_50_90": ratio,
            "adaptive_503_per_result": 0.0,
        },
    }
    (tmp_path / "sweep.json").write_text(json.dumps(data))
    text = windows.sweep_table(tmp_path, "sweep.json", ("steady",), False)
    assert "| requests/s (steady 10-90%) | 10.0 | 10.0 |" in text
    assert "commit 0123456, DIRTY TREE: M consumer/x.py, 2026-11-29" in text


def test_the_ollama_summary_follows_the_fastest_adaptive_run(tmp_path: Path) -> None:
    ollama = importlib.import_module("benchmarks.render_ollama")
    results = copy_docs(tmp_path) / "benchmarks" / "results"
    assert "16 slots, adaptive window | 0.42 |" in ollama.summary_table(results)

    raw = results / "gpu" / "run6" / "call7-results.json"
    data = json.loads(raw.read_text(encoding="utf-8"))
    twice = 2 * data["e2e"]["ollama-fixed8-p8"]["rps_from_start"]  # twice the prototype's
    data["e2e"]["ollama-adaptive-p32"]["rps_from_start"] = twice
    raw.write_text(json.dumps(data), encoding="utf-8")

    table = ollama.summary_table(results)
    assert f"32 slots, adaptive window | {twice:.2f} |" in table
    assert f"| {twice:.2f} | 1.00 | {170_000 / twice / 3600:.0f} h | 2.00 |" in table
