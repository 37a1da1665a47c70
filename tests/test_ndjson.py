"""``marrow-triage check --ndjson``: a nurse line's batch, one report per line (issue 11)."""

from __future__ import annotations

import json
import os
import pty
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from marrow_triage import Bleeding, TriageEngine
from marrow_triage.adapters.cli import ndjson
from marrow_triage.adapters.cli.main import app
from marrow_triage.errors import EngineError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("marrow-triage")
HIDDEN_FEVER = ('{"hours_since_procedure": 30, "temperature": {"value": 38.5, "unit": "C"}, '
                '"temperature": {"value": 36.5, "unit": "C"}}')

runner = CliRunner()


def _reports(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """Varied valid reports, the same on every run."""
    rng = random.Random(seed)
    reports: list[dict[str, Any]] = []
    for _ in range(count):
        report: dict[str, Any] = {"hours_since_procedure": rng.randint(1, 240)}
        if rng.random() < 0.5:
            report["temperature"] = {"value": round(rng.uniform(36.0, 39.5), 1), "unit": "C"}
        if rng.random() < 0.5:
            report["site_pain"] = rng.randint(0, 10)
        if rng.random() < 0.3:
            report["bleeding"] = rng.choice([b.value for b in Bleeding])
        if rng.random() < 0.1:
            report["chest_pain"] = True
        reports.append(report)
    return reports


def test_one_result_per_line_in_order_with_error_lines_in_place(engine: TriageEngine) -> None:
    good = [{"hours_since_procedure": 20, "chest_pain": True},
            {"hours_since_procedure": 48, "site_pain": 3},
            {"hours_since_procedure": 30, "temperature": {"value": 101.3, "unit": "F"}}]
    lines = [json.dumps(good[0]), '{"hours_since_procedure": 20, "site_pain": 11}',
             json.dumps(good[1]), "", HIDDEN_FEVER, "{not json", json.dumps(good[2])]
    result = runner.invoke(app, ["check", "--ndjson", "-"], input="\n".join(lines) + "\n")
    assert result.exit_code == 2
    out = result.stdout.splitlines()
    assert len(out) == len(lines)
    expected = [engine.triage(r) for r in good]
    assert [out[0], out[2], out[6]] == [r.model_dump_json() for r in expected]
    errors = {i: json.loads(out[i]) for i in (1, 3, 4, 5)}
    assert {i: e["line"] for i, e in errors.items()} == {1: 2, 3: 4, 4: 5, 5: 6}
    assert all(e["error"] == "invalid report" for e in errors.values())
    assert errors[1]["problems"] == [
        {"field": "site_pain", "message": "Input should be less than or equal to 10"}]
    assert errors[3]["problems"][0]["message"].startswith("empty line")
    assert errors[4]["problems"][0]["field"] == "temperature"
    assert "duplicate key 'temperature'" in errors[4]["problems"][0]["message"]
    assert "Invalid JSON" in errors[5]["problems"][0]["message"]
    # stderr is not a terminal here: no progress, only the one summary line.
    assert result.stderr == ("4 of 7 line(s) could not be triaged (lines 2, 4, 5, 6): "
                             "see their error lines in the output\n")


def test_all_lines_valid_exits_0_and_matches_triage_many(tmp_path: Path,
                                                         engine: TriageEngine) -> None:
    reports = _reports(40)
    source = tmp_path / "calls.ndjson"
    source.write_text("".join(json.dumps(r) + "\r\n" for r in reports), "utf-8")
    result = runner.invoke(app, ["check", "--ndjson", str(source)])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [r.model_dump_json()
                                          for r in engine.triage_many(reports)]


def test_chunks_keep_order_and_a_bad_line_does_not_stop_the_rest(
        monkeypatch: pytest.MonkeyPatch, engine: TriageEngine) -> None:
    monkeypatch.setattr(ndjson, "CHUNK_LINES", 3)
    reports = _reports(10)
    lines = [json.dumps(r) for r in reports]
    lines[4] = '{"hours_since_procedure": -1}'
    written: list[str] = []
    seen: list[tuple[int, int]] = []
    summary = ndjson.triage_lines(engine, [(line + "\n").encode() for line in lines],
                                  written.append, lambda n, b: seen.append((n, b)))
    assert (summary.lines, summary.failed) == (10, [5])
    out = "".join(written).splitlines()
    assert len(written) == 4  # streamed chunk by chunk
    assert json.loads(out[4])["line"] == 5
    assert [o for i, o in enumerate(out) if i != 4] == [
        engine.triage(r).model_dump_json() for i, r in enumerate(reports) if i != 4]
    assert [n for n, _ in seen] == [3, 6, 9, 10]
    assert seen[-1][1] == sum(len(line) + 1 for line in lines)


def test_a_byte_order_mark_on_the_first_line_is_accepted() -> None:
    data = "\ufeff" + json.dumps({"hours_since_procedure": 20, "chest_pain": True}) + "\n"
    result = runner.invoke(app, ["check", "--ndjson", "-"], input=data.encode("utf-8"))
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["level"] == "emergency"


def test_a_missing_file_is_exit_2() -> None:
    result = runner.invoke(app, ["check", "--ndjson", "no-such-file.ndjson"])
    assert result.exit_code == 2
    assert result.stderr.startswith("no-such-file.ndjson: cannot read:")


def test_help_says_which_exit_status_a_failed_line_gives() -> None:
    result = runner.invoke(app, ["check", "--help"], env={"COLUMNS": "200"})
    flat = " ".join(result.stdout.split())
    assert "--ndjson" in flat and "Exit status 2 if any line failed" in flat


@pytest.mark.skipif(not SCRIPT.exists(), reason="needs the installed marrow-triage script")
def test_progress_goes_to_stderr_only_when_it_is_a_terminal(tmp_path: Path) -> None:
    source = tmp_path / "calls.ndjson"
    source.write_text("".join(json.dumps(r) + "\n" for r in _reports(2500)), "utf-8")
    out_path = tmp_path / "out.ndjson"
    primary, secondary = pty.openpty()
    with out_path.open("wb") as out:
        proc = subprocess.Popen([str(SCRIPT), "check", "--ndjson", str(source)], stdout=out,
                                stderr=secondary, env={**os.environ, "COLUMNS": "100"})
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed: the process is done with it
                break
            if not chunk:
                break
            shown += chunk
        assert proc.wait(timeout=300) == 0
    os.close(primary)
    assert b"line(s) triaged" in shown  # rich's progress, drawn on the terminal
    lines = out_path.read_text("utf-8").splitlines()
    assert len(lines) == 2500 and all(line.startswith('{"level":') for line in lines)


def test_the_ndjson_benchmark_runs_and_checks_the_commands_contract() -> None:
    # `make bench` figures are taken by the benchmark itself; here only that it runs and
    # that the command kept its contract on a faulty mix (one line out per line in, exit 2).
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import ndjson_batch
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    figures = ndjson_batch.measure(count=300, runs=1)
    assert figures["reports"] == 300 and 0 < figures["faulty"] < 300
    assert "ndjson_vs_target=" in ndjson_batch.report(figures)


# --- worker processes (--jobs) --------------------------------------------------------

def _lines_with_faults(count: int) -> list[bytes]:
    lines = [json.dumps(r) for r in _reports(count, seed=5)]
    for i in range(3, count, 11):
        lines[i] = HIDDEN_FEVER if i % 2 else "{not json"
    return [(line + "\n").encode() for line in lines]


@pytest.mark.parametrize("jobs", [2, 3])
def test_workers_write_the_same_bytes_in_the_same_order(
        monkeypatch: pytest.MonkeyPatch, engine: TriageEngine, jobs: int) -> None:
    monkeypatch.setattr(ndjson, "CHUNK_LINES", 7)
    lines = _lines_with_faults(90)
    alone: list[str] = []
    expected = ndjson.triage_lines(engine, lines, alone.append)
    together: list[str] = []
    seen: list[int] = []
    summary = ndjson.triage_lines(engine, lines, together.append,
                                  lambda n, _b: seen.append(n), jobs=jobs)
    assert "".join(together) == "".join(alone)
    assert (summary.lines, summary.failed) == (expected.lines, expected.failed)
    assert summary.failed and seen == [*range(7, 90, 7), 90]


class _FailsInWorkers(TriageEngine):
    """An engine that fails, or dies, on one report, but only in a forked worker."""

    def __init__(self, parent: int, die: bool) -> None:
        super().__init__(TriageEngine.default().pack)
        self._parent = parent
        self._die = die

    def triage_many(self, reports: Any, locale: str | None = None) -> Any:
        reports = list(reports)
        if os.getpid() != self._parent and any(
                r.hours_since_procedure == 999 for r in reports):
            if self._die:
                os._exit(9)
            raise RuntimeError("engine broke")
        return super().triage_many(reports, locale)


@pytest.mark.parametrize("die", [False, True])
def test_a_failed_or_dead_worker_stops_the_run_with_an_engine_error(
        monkeypatch: pytest.MonkeyPatch, die: bool) -> None:
    monkeypatch.setattr(ndjson, "CHUNK_LINES", 5)
    # Line 13 is in the third chunk, which (with two jobs) a worker triages.
    lines = [(json.dumps({"hours_since_procedure": 999 if i == 12 else 20}) + "\n").encode()
             for i in range(40)]
    written: list[str] = []
    with pytest.raises(EngineError, match="ended unexpectedly" if die else "engine broke"):
        ndjson.triage_lines(_FailsInWorkers(os.getpid(), die), lines, written.append, jobs=2)
    # Nothing after the failed chunk is written, and what was written is whole lines.
    assert all(text.endswith("\n") for text in written)
    assert len("".join(written).splitlines()) <= 10


def test_jobs_must_be_at_least_one() -> None:
    result = runner.invoke(app, ["check", "--ndjson", "-", "--jobs", "0"], input="")
    assert result.exit_code == 2
    assert "--jobs" in result.stderr
