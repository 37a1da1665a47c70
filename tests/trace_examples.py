"""The worked examples as `marrow-triage rules trace` cites them: test id, facts, rules.

`marrow-triage rules trace --examples tests/trace_examples.py` imports this file and calls
:func:`traced_examples`; tests/test_traceability.py does the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from marrow_triage import SymptomReport, TriageEngine
from marrow_triage.change.trace import TracedExample
from marrow_triage.pack.facts import report_facts
from test_rules_examples import EXAMPLES
from timeline_examples import TIMELINE_EXAMPLES, run_scenario


def traced_examples(engine: TriageEngine) -> list[TracedExample]:
    """Every report and timeline example, with the facts of the report it judges."""
    out = [TracedExample(f"tests/test_rules_examples.py::test_example[{e.name}]",
                         report_facts(SymptomReport.model_validate(e.report)), e.rules)
           for e in EXAMPLES]
    for scenario in TIMELINE_EXAMPLES:
        _, facts = run_scenario(engine, scenario)
        out.append(TracedExample(
            f"tests/test_timeline_examples.py::test_timeline_example[{scenario.name}]",
            facts, scenario.rules))
    return out
