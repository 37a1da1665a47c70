"""Coverage-guided fuzzing (atheris) of the JSON entry point, ``TriageEngine.triage_json``.

Any input must give a TriageResult or a pydantic ValidationError; anything else (another
exception, a crash in durable_rules' C engine) is a finding. Seeds are the example reports
and a few hand-written edge cases; atheris mutates them.

    python fuzz/fuzz_triage_json.py -atheris_runs=2000        # brief, as in `make fuzz`
    python fuzz/fuzz_triage_json.py -max_total_time=600       # a longer local run
"""

from __future__ import annotations

import json
import sys

import atheris
from pydantic import ValidationError

with atheris.instrument_imports(include=["marrow_triage"]):
    from marrow_triage import TriageEngine, TriageResult

ENGINE = TriageEngine.default()

SEEDS = [
    b'{"hours_since_procedure": 30, "temperature": {"value": 101.3, "unit": "F"}}',
    b'{"hours_since_procedure": 5, "bleeding": "does_not_stop", "dizziness_or_fainting": true}',
    b'{"hours_since_procedure": 48, "site_redness": true, "site_swelling": true}',
    b'{"hours_since_procedure": 2, "chills": true, "low_white_cell_count": true}',
    b'{"hours_since_procedure": 1e400, "site_pain": NaN}',
]


def test_one_input(data: bytes) -> None:
    """The fuzz target: one input, either form of the entry point."""
    for payload in (data, _structured(data)):
        try:
            result = ENGINE.triage_json(payload)
        except ValidationError:
            continue
        assert isinstance(result, TriageResult)
        assert result.level.value in {"self_care", "soon", "urgent", "emergency"}


def _structured(data: bytes) -> str:
    """A report-shaped JSON object built from the bytes, to reach the rules more often."""
    fdp = atheris.FuzzedDataProvider(data)
    fields = ["temperature", "bleeding", "site_discharge", "site_pain", "back_or_abdominal_pain",
              "chills", "site_redness", "chest_pain", "low_white_cell_count", "bruising",
              "pain_trend", "received_sedation", "blood_thinners", "unknown"]
    report: dict[str, object] = {"hours_since_procedure": fdp.ConsumeIntInRange(-5, 9000)}
    for name in fields:
        if not fdp.ConsumeBool():
            continue
        kind = fdp.ConsumeIntInRange(0, 5)
        if name == "temperature" and kind < 3:
            report[name] = {"value": fdp.ConsumeFloat(), "unit": fdp.PickValueInList(
                ["C", "F", "K"])}
        elif kind == 0:
            report[name] = fdp.ConsumeBool()
        elif kind == 1:
            report[name] = fdp.ConsumeIntInRange(-3, 14)
        elif kind == 2:
            report[name] = fdp.PickValueInList(["none", "mild", "unusual", "does_not_stop",
                                                "soaks_dressing", "worse", "clear"])
        elif kind == 3:
            report[name] = fdp.ConsumeFloat()
        else:
            report[name] = fdp.ConsumeUnicodeNoSurrogates(20)
    return json.dumps(report)


def main(argv: list[str]) -> None:
    atheris.Setup(argv, test_one_input)
    for seed in SEEDS:  # seeds always run first, so a regression there fails at once
        test_one_input(seed)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
