"""Structure-aware fuzzing of rule packs: the default pack mutated rule by rule.

Each input picks rules of the packaged pack (report rules, questions, timeline rules,
``pack.yaml``) and changes one field of each: a threshold moved or swapped for an odd
value, a condition widened into ``any`` or nested deeper, an explanation or advice given
placeholders with format specs, a field removed or renamed, an id duplicated, an
alias written into the YAML. The pack is written out and loaded. Loading must raise a
``RulePackError`` whose problems name a file and a field, or give a pack that compiles
(report and timeline rules) and triages reports; anything else (another exception, a
hang, a crash in durable_rules) is a finding.

    python fuzz/fuzz_rule_packs.py -atheris_runs=200       # as in `make test`
    python fuzz/fuzz_rule_packs.py -atheris_runs=20000     # as in `make fuzz`
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import atheris
import yaml
from _libfuzzer import with_defaults

with atheris.instrument_imports(include=["marrow_triage"]):
    from marrow_triage import RulePack, RulePackError, TriageResult
    from marrow_triage.engine.triage import compile_everything

RULES = Path(__file__).resolve().parents[1] / "rules"
TEXTS = {p.name: p.read_text(encoding="utf-8") for p in sorted(RULES.glob("*.yaml"))}
FILES = {name: yaml.safe_load(text) for name, text in TEXTS.items()}
WORK = Path(tempfile.mkdtemp(prefix="marrow-fuzz-pack-")) / "rules"
shutil.copytree(RULES, WORK)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_changed: set[str] = set()
REPORTS = [
    {"hours_since_procedure": 5},
    {"hours_since_procedure": 30, "temperature": {"value": 38.4, "unit": "C"}, "chills": True},
    {"hours_since_procedure": 100, "site_pain": 8, "bleeding": "does_not_stop",
     "low_white_cell_count": True, "bruising": "large_or_spreading"},
]
ODD: list[Any] = [None, True, 0, -1, 1.5, 10**12, 1e-7, float("nan"), "", "38.3", [], {},
                  {"at_least": "high"}, "x" * 200, "{site_pain:>99999999}", "{site_pain!r}",
                  "{site_pain.__class__}", "{0}", "{", "}", "{{ok}}", "{count}",
                  "{raised_temperature_c}", "{no_such_fact}"]


def _items(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(section, item) for section in ("rules", "questions", "timeline_rules")
            if isinstance(data.get(section), list)
            for item in data[section] if isinstance(item, dict)]


def _mutate_condition(fdp: atheris.FuzzedDataProvider, when: Any) -> Any:
    op = fdp.ConsumeIntInRange(0, 5)
    if op == 0:  # widen: any of copies with shifted thresholds
        copies = fdp.ConsumeIntInRange(1, 200)
        return {"any": [json.loads(json.dumps(when)) for _ in range(copies)]}
    if op == 1:  # nest deeper
        for depth in range(fdp.ConsumeIntInRange(1, 30)):
            when = {"any" if depth % 2 else "all": [when]}
        return when
    if op == 2 and isinstance(when, dict) and when:
        key = fdp.PickValueInList(sorted(when, key=str))
        value = when[key]
        if isinstance(value, dict) and value:
            test = fdp.PickValueInList(sorted(value, key=str))
            value = {**value, test: fdp.PickValueInList(ODD) if fdp.ConsumeBool()
                     else round(fdp.ConsumeFloatInRange(-5, 200), fdp.ConsumeIntInRange(0, 8))}
            return {**when, key: value}
        return {**when, key: fdp.PickValueInList(ODD)}
    if op == 3 and isinstance(when, dict):  # a renamed or unknown fact
        return {fdp.ConsumeUnicodeNoSurrogates(16) or "x": {"is": True}, **when}
    if op == 4:
        return {"one_of": when} if fdp.ConsumeBool() else {"all": []}
    return fdp.PickValueInList(ODD)


def _mutate_item(fdp: atheris.FuzzedDataProvider, item: dict[str, Any]) -> dict[str, Any]:
    item = dict(item)
    field = fdp.PickValueInList([*sorted(item), "explanation", "advice", "when", "id", "new"])
    op = fdp.ConsumeIntInRange(0, 4)
    if field == "when" and op < 3:
        item["when"] = _mutate_condition(fdp, item.get("when"))
    elif op == 0:
        item.pop(field, None)
    elif op == 1 and isinstance(item.get(field), str):
        text = item[field]
        at = fdp.ConsumeIntInRange(0, len(text))
        item[field] = text[:at] + str(fdp.PickValueInList(ODD)) + text[at:]
    elif op == 2 and isinstance(item.get(field), list):
        item[field] = [*item[field], str(fdp.PickValueInList(ODD))]
    else:
        item[field] = fdp.PickValueInList(ODD)
    return item


def write_mutated(data: bytes) -> Path:
    """The default pack with the mutations ``data`` chooses, written to a directory."""
    fdp = atheris.FuzzedDataProvider(data)
    files = json.loads(json.dumps(FILES))  # a deep copy without shared objects
    raw: dict[str, str] = {}
    touched: set[str] = set()
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        name = fdp.PickValueInList(sorted(files))
        touched.add(name)
        data_ = files[name]
        op = fdp.ConsumeIntInRange(0, 9)
        items = _items(data_)
        if op < 7 and items:
            section, item = items[fdp.ConsumeIntInRange(0, len(items) - 1)]
            index = data_[section].index(item)
            data_[section][index] = _mutate_item(fdp, item)
        elif op == 7 and items:  # a duplicated rule (same id)
            section, item = items[fdp.ConsumeIntInRange(0, len(items) - 1)]
            data_[section].append(json.loads(json.dumps(item)))
        elif op == 8 and isinstance(data_, dict) and data_:
            key = fdp.PickValueInList(sorted(data_, key=str))
            data_[key] = fdp.PickValueInList(ODD)
        else:  # YAML the loader must refuse: aliases, repeated keys
            raw[name] = yaml.dump(data_, Dumper=_DUMPER, sort_keys=False, allow_unicode=True) + \
                fdp.PickValueInList(["x: &a [1]\ny: *a\n", "rules: []\n", "\t- bad\n"])
    # Only the files changed now or last time are written (the rest stay as shipped).
    for name in sorted(_changed | touched):
        text = raw.get(name) or (TEXTS[name] if name not in touched else yaml.dump(
            files[name], Dumper=_DUMPER, sort_keys=False, allow_unicode=True))
        (WORK / name).write_text(text, encoding="utf-8")
    _changed.clear()
    _changed.update(touched)
    return WORK


def test_one_input(data: bytes) -> None:
    """The fuzz target."""
    root = write_mutated(data)
    try:
        pack = RulePack.from_path(root)
        engine = compile_everything(pack)
    except RulePackError as exc:
        assert exc.problems, exc
        for problem in exc.problems:
            assert problem.file and problem.field and problem.message, problem
        return
    for report in REPORTS:
        assert isinstance(engine.triage(report), TriageResult)


def main(argv: list[str]) -> None:
    atheris.Setup(with_defaults(argv), test_one_input)
    test_one_input(b"")  # the pack unchanged (one mutation of nothing) first
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
