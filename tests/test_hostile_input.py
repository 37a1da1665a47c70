"""Hostile input: whatever a caller sends, the answer is a result or a validation error.

Arbitrary JSON (wrong types, huge numbers, NaN/Infinity, deep nesting, long strings,
unknown keys) through ``triage`` and ``triage_json``, arbitrary bytes through
``triage_json`` and the ``marrow-triage check -`` command line: never another exception,
never a traceback, never a hang (the big inputs run in a subprocess with a timeout).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from marrow_triage import DuplicateKeyError, SymptomReport, TriageEngine, TriageResult

REPORT_FIELDS = tuple(SymptomReport.model_fields)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.integers(min_value=-20, max_value=400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["none", "unusual", "does_not_stop", "C", "F", "38.3", "", "\x00",
                       "NaN", "Infinity", "true", "soaks_dressing", "mild"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12) | st.sampled_from(["value", "unit"]), inner,
                      max_size=4),
    max_leaves=12,
)
temperatures = st.fixed_dictionaries(
    {"value": json_values | st.floats(allow_nan=True, allow_infinity=True),
     "unit": json_values | st.sampled_from(["C", "F", "K", "c"])},
    optional={"extra": json_values},
)
# Report-shaped objects: real field names with values of any type, plus unknown keys.
report_like = st.builds(
    lambda extra, hours, temperature: {**extra, **hours, **temperature},
    st.dictionaries(st.sampled_from(REPORT_FIELDS) | st.text(max_size=20), json_values,
                    max_size=10),
    st.dictionaries(st.just("hours_since_procedure"),
                    json_values | st.floats(min_value=0, max_value=1e4)
                    | st.integers(min_value=0, max_value=500), max_size=1),
    st.dictionaries(st.just("temperature"), temperatures | json_values, max_size=1),
)

fast = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@pytest.fixture(scope="module")
def engine() -> TriageEngine:
    return TriageEngine.default()


def _result_or_validation_error(call: Any, arg: Any) -> TriageResult | None:
    try:
        result = call(arg)
    except (ValidationError, DuplicateKeyError):
        return None
    assert isinstance(result, TriageResult)
    return result


@fast
@given(report=report_like)
def test_arbitrary_dicts_give_result_or_validation_error(engine: TriageEngine,
                                                         report: dict[str, Any]) -> None:
    result = _result_or_validation_error(engine.triage, report)
    if result is not None:
        # Only a report the model accepts is triaged; it must round-trip through its JSON
        # form to the same report, and the same result.
        validated = SymptomReport.model_validate(report)
        again = SymptomReport.model_validate_json(validated.model_dump_json())
        assert again == validated
        assert engine.triage(again) == result


@fast
@given(value=json_values | report_like)
def test_arbitrary_json_text_gives_result_or_validation_error(engine: TriageEngine,
                                                              value: Any) -> None:
    text = json.dumps(value)  # writes NaN / Infinity / -Infinity literals for floats
    from_text = _result_or_validation_error(engine.triage_json, text)
    from_bytes = _result_or_validation_error(engine.triage_json, text.encode("utf-8"))
    assert (from_text is None) == (from_bytes is None)
    if from_text is not None and from_bytes is not None:
        assert from_text.model_dump_json() == from_bytes.model_dump_json()


@fast
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_give_result_or_validation_error(engine: TriageEngine,
                                                         data: bytes) -> None:
    _result_or_validation_error(engine.triage_json, data)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400",
                                     "1" * 5000, "1e-400", "-0.0"])
def test_special_number_literals(engine: TriageEngine, literal: str) -> None:
    for text in (f'{{"hours_since_procedure": {literal}}}',
                 f'{{"hours_since_procedure": 5, "temperature": '
                 f'{{"value": {literal}, "unit": "C"}}}}',
                 f'{{"hours_since_procedure": 5, "site_pain": {literal}}}'):
        result = _result_or_validation_error(engine.triage_json, text)
        if result is not None:  # only finite, in-range numbers are accepted
            value = json.loads(text)
            assert all(math.isfinite(v) for v in _numbers(value))


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    return [float(value)]


def test_non_finite_python_floats_rejected(engine: TriageEngine) -> None:
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValidationError):
            engine.triage({"hours_since_procedure": bad})
        with pytest.raises(ValidationError):
            engine.triage({"hours_since_procedure": 1, "temperature": {"value": bad,
                                                                        "unit": "C"}})


def test_huge_python_ints_rejected(engine: TriageEngine) -> None:
    with pytest.raises(ValidationError):
        engine.triage({"hours_since_procedure": 10**1000})
    with pytest.raises(ValidationError):
        engine.triage({"hours_since_procedure": 1, "site_pain": 10**1000})


def test_long_strings_and_keys(engine: TriageEngine) -> None:
    long = "x" * 2_000_000
    for report in ({"hours_since_procedure": 1, "bleeding": long},
                   {"hours_since_procedure": long}):
        with pytest.raises(ValidationError) as info:
            engine.triage(report)
        assert len(str(info.value)) < 5000  # the message does not echo megabytes back
    with pytest.raises(ValidationError):  # an unknown key is named in full, by pydantic
        engine.triage({"hours_since_procedure": 1, long: True})


BIG_INPUT_SCRIPT = r"""
import json, sys
from pydantic import ValidationError
from marrow_triage import DuplicateKeyError, TriageEngine
engine = TriageEngine.default()
depth = 100_000
cases = [
    "[" * depth + "]" * depth,
    '{"hours_since_procedure": 1, "temperature": ' + '{"value": ' * depth + "1" + "}" * depth
    + "}",
    '{"hours_since_procedure": 1, "bleeding": "' + "a" * 5_000_000 + '"}',
    '{"hours_since_procedure": 1, ' + ", ".join(f'"k{i}": {i}' for i in range(100_000)) + "}",
    "[" * depth,
    '{"hours_since_procedure": 1' + ', "site_pain": 3' * 50_000 + "}",
]
nested = {"value": 1}
for _ in range(5000):
    nested = {"value": nested, "unit": "C"}
outcomes = []
for case in cases:
    try:
        engine.triage_json(case)
        outcomes.append("result")
    except (ValidationError, DuplicateKeyError):
        outcomes.append("invalid")
for obj in ({"hours_since_procedure": 1, "temperature": nested},
            {"hours_since_procedure": [[[[[[[]]]]]]] }):
    try:
        engine.triage(obj)
        outcomes.append("result")
    except ValidationError:
        outcomes.append("invalid")
print(json.dumps(outcomes))
"""


def test_deep_nesting_and_huge_documents_do_not_hang_or_crash() -> None:
    proc = subprocess.run([sys.executable, "-c", BIG_INPUT_SCRIPT], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcomes = json.loads(proc.stdout)
    # All invalid, the 50,000 duplicated keys too (refused, not "the last one wins").
    assert outcomes == ["invalid"] * 8


# --- the command line -------------------------------------------------------------------

CLI_CASES: list[bytes] = [
    b"\xff\xfe\x00garbage",
    b"\x80",
    b'{"hours_since_procedure": 5, "bleeding": "\xc3\x28"}',
    b"",
    b"   ",
    b"not json at all",
    b"[1, 2, 3]",
    b"null",
    b'{"hours_since_procedure": NaN}',
    b'{"hours_since_procedure": 1e999}',
    b'{"hours_since_procedure": 5, "temperature": {"value": Infinity, "unit": "C"}}',
    b'{"hours_since_procedure": 5, "site_pain": 11}',
    b'{"hours_since_procedure": 5, "unknown_symptom": true}',
    b"[" * 50_000 + b"]" * 50_000,
    b'{"hours_since_procedure": 5, "bleeding": "' + b"b" * 1_000_000 + b'"}',
    b"\x00" * 1000,
    b'{"hours_since_procedure": 5, "' + b"k" * 100_000 + b'": true}',
]


def _run_cli(data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-c",
                           "from marrow_triage.adapters.cli import main; main()",
                           "check", "-"],
                          input=data, capture_output=True, timeout=60, check=False)


def test_cli_module_is_runnable() -> None:
    proc = _run_cli(b'{"hours_since_procedure": 30, "temperature": {"value": 101.3, '
                    b'"unit": "F"}}')
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"rgent" in proc.stdout


# A few cases through a real process (stdin, exit code, stderr), the rest in-process.
PROCESS_CASES = [CLI_CASES[0], CLI_CASES[3], CLI_CASES[13],
                 CLI_CASES[-1]]


def _check_rejection(exit_code: int, stderr: str, stdout: str) -> None:
    assert exit_code == 2, (exit_code, stderr[-2000:])
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert 1 <= len(lines) <= 11, lines  # at most 10 problems, then a count
    assert all(": " in line or line.startswith("...") for line in lines), lines
    assert all(len(line) < 500 for line in lines), [line[:200] for line in lines]
    assert stdout == ""


@pytest.mark.parametrize("data", PROCESS_CASES, ids=lambda d: repr(d[:30]))
def test_cli_process_rejects_hostile_stdin_with_exit_2_and_no_traceback(data: bytes) -> None:
    proc = _run_cli(data)
    _check_rejection(proc.returncode, proc.stderr.decode("utf-8", errors="replace"),
                     proc.stdout.decode("utf-8", errors="replace"))


def _invoke(data: bytes) -> Any:
    from typer.testing import CliRunner

    from marrow_triage.adapters.cli.main import app

    return CliRunner().invoke(app, ["check", "-", "--json"], input=data)


@pytest.mark.parametrize("data", CLI_CASES, ids=lambda d: repr(d[:30]))
def test_cli_rejects_hostile_stdin_with_exit_2_and_no_traceback(data: bytes) -> None:
    result = _invoke(data)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    _check_rejection(result.exit_code, result.stderr, result.stdout)


@settings(max_examples=20, deadline=None)
@given(data=st.binary(max_size=120) | json_values.map(lambda v: json.dumps(v).encode()))
def test_cli_in_process_on_arbitrary_stdin(data: bytes) -> None:
    result = _invoke(data)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    if result.exit_code == 0:
        TriageResult.model_validate_json(result.stdout)
    else:
        _check_rejection(result.exit_code, result.stderr, result.stdout)


def test_atheris_fuzz_target_runs_briefly_without_findings() -> None:
    # The coverage-guided target of fuzz/ (`make fuzz` runs it longer). atheris exits
    # non-zero, with the crashing input, on any exception other than ValidationError.
    from pathlib import Path

    target = Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_triage_json.py"
    proc = subprocess.run([sys.executable, str(target), "-atheris_runs=1500", "-seed=1"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 1500" in proc.stderr
