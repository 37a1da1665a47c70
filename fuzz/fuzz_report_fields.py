"""Structure-aware fuzzing of reports: valid JSON reports mutated field by field.

Each input picks a seed report (the examples and a generated mix) and applies a few
mutations, each to one field of the report's schema (read from ``SymptomReport``, so new
fields are fuzzed too): remove it, set a valid value, a boundary value, a value of the
wrong type or a hostile one, or add an unknown key. The report then goes through
``TriageEngine.triage_json``. It must give a result whose level is its highest finding's, the
same one twice, or a ``ReportError`` listing its problems; anything else is a finding.

    python fuzz/fuzz_report_fields.py -atheris_runs=300      # as in `make test`
    python fuzz/fuzz_report_fields.py -atheris_runs=200000   # as in `make fuzz`

libFuzzer's ``cov:`` figure is the number of code edges reached (fuzz/README.md).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import atheris
from _libfuzzer import with_defaults

with atheris.instrument_imports(include=["marrow_triage"]):
    from marrow_triage import ReportError, SymptomReport, TriageEngine, TriageResult, Urgency

ROOT = Path(__file__).resolve().parents[1]
ENGINE = TriageEngine.default()
SCHEMA = SymptomReport.model_json_schema()
FIELDS = sorted(SCHEMA["properties"])
HOSTILE: list[Any] = [None, True, False, 0, -1, 10**30, -(10**30), 1e308, -1e308, 1e-308, 0.1,
                      10.5, 38.29999999, 100.4, "", "NaN", "Infinity", "38.3", "x" * 5000,
                      "\u202e\x00", [], [1], {}, {"value": 1}, {"$gt": 1}]


def _mix() -> list[dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("marrow_bench_mix", ROOT / "benchmarks" /
                                                  "mix.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.mixed_reports(40, seed=7)  # type: ignore[no-any-return]


SEEDS: list[dict[str, Any]] = [
    json.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "examples").glob("*.json"))
] + _mix()


def _definition(name: str) -> dict[str, Any]:
    """The schema of one report field, with ``$ref`` and ``anyOf [x, null]`` resolved."""
    node = SCHEMA["properties"][name]
    for option in node.get("anyOf", []):
        if option.get("type") != "null":
            node = {**node, **option}
    ref = node.get("$ref")
    if ref:
        node = {**node, **SCHEMA["$defs"][ref.rsplit("/", 1)[-1]]}
    return node


def _valid(fdp: atheris.FuzzedDataProvider, name: str) -> Any:
    node = _definition(name)
    if "enum" in node:
        return fdp.PickValueInList(node["enum"])
    kind = node.get("type")
    if kind == "boolean":
        return fdp.ConsumeBool()
    if kind == "integer":
        return fdp.ConsumeIntInRange(int(node.get("minimum", -5)), int(node.get("maximum", 50)))
    if kind == "number":
        low, high = float(node.get("minimum", -10)), float(node.get("maximum", 400))
        return round(fdp.ConsumeFloatInRange(low, high), fdp.ConsumeIntInRange(0, 6))
    if kind == "object" and "value" in node.get("properties", {}):  # a temperature
        unit = fdp.PickValueInList(["C", "F"])
        low, high = (30.0, 45.0) if unit == "C" else (86.0, 113.0)
        return {"value": round(fdp.ConsumeFloatInRange(low, high), fdp.ConsumeIntInRange(0, 3)),
                "unit": unit}
    if kind == "string":
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 300))
    return fdp.PickValueInList(HOSTILE)


def _boundary(fdp: atheris.FuzzedDataProvider, name: str) -> Any:
    node = _definition(name)
    edges: list[Any] = [node[k] for k in ("minimum", "maximum", "exclusiveMinimum",
                                          "exclusiveMaximum") if k in node]
    if "value" in node.get("properties", {}):
        unit = fdp.PickValueInList(["C", "F", "K", "c", ""])
        return {"value": fdp.PickValueInList([38.0, 38.3, 37.99999, 100.4, 101.0, 100.94, 0,
                                              -459.67, 1e308, 30, 45]), "unit": unit}
    return fdp.PickValueInList(edges + [e + d for e in edges if isinstance(e, int | float)
                                        for d in (-1, -0.5, 0.5, 1)] or HOSTILE)


def mutate(data: bytes) -> str:
    """A seed report with a few field mutations chosen by ``data``, as JSON text."""
    fdp = atheris.FuzzedDataProvider(data)
    report = dict(SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)])
    for _ in range(fdp.ConsumeIntInRange(1, 6)):
        name = fdp.PickValueInList(FIELDS)
        op = fdp.ConsumeIntInRange(0, 5)
        if op == 0:
            report.pop(name, None)
        elif op == 1:
            report[name] = _valid(fdp, name)
        elif op == 2:
            report[name] = _boundary(fdp, name)
        elif op == 3:
            report[name] = fdp.PickValueInList(HOSTILE)
        elif op == 4:
            report[fdp.ConsumeUnicodeNoSurrogates(12) or "x"] = _valid(fdp, name)
        else:
            report = {k: v for k, v in report.items() if k != "hours_since_procedure"} \
                if fdp.ConsumeBool() else report
    return json.dumps(report, allow_nan=True)


def check(result: TriageResult) -> None:
    """A result's level is its highest finding's."""
    levels = [f.level for f in result.findings]
    assert result.level is (max(levels, key=lambda u: u.rank) if levels else Urgency.SELF_CARE)


def test_one_input(data: bytes) -> None:
    """The fuzz target."""
    text = mutate(data)
    try:
        result = ENGINE.triage_json(text)
    except ReportError as exc:
        assert exc.problems and all(p.message for p in exc.problems), exc
        return
    check(result)
    assert ENGINE.triage_json(text).model_dump_json() == result.model_dump_json()


def main(argv: list[str]) -> None:
    atheris.Setup(with_defaults(argv), test_one_input)
    for seed in SEEDS:  # every seed as it is first, so a regression there fails at once
        check(ENGINE.triage(seed))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
