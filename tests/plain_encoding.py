"""The plain statement of how a fact reaches durable_rules, as a dict.

The engine builds the same thing as JSON text, by hand and faster
(``engine.durable.fact_members`` and ``report_members``); test_fact_encoding.py holds it
to this form, and the benchmarks use it to feed the bare durable_rules floors.
"""

from __future__ import annotations

from collections.abc import Mapping

from marrow_triage.engine.encode import engine_number
from marrow_triage.pack.facts import TIMELINE_FACT_FIELDS, FactValue


def engine_fact(facts: Mapping[str, FactValue]) -> dict[str, int | bool | str]:
    """A fact's values as durable_rules sees them: numbers in whole millionths, rounded down;
    free text only as ``True`` (given), never the text itself."""
    text = {name for name, field in TIMELINE_FACT_FIELDS.items() if field.kind == "text"}
    return {name: True if name in text
            else value if isinstance(value, bool | str) else engine_number(value)
            for name, value in facts.items()}
