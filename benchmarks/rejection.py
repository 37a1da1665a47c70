"""What refusing a body of many unknown keys costs, next to reading it.

Issue 13: a 256 KB report of 29,612 unknown keys took 0.6-1.0 s to refuse (2.6 MB of
errors) and the CLI 3.5 s on 50,000 (a spelling suggestion each). Validation now stops
after ``MAX_LISTED_PROBLEMS`` unknown keys and counts the rest through the model's few
fields, so refusing a parsed body costs about the same for 1,000 keys as for 50,000
(target: ``refusal_growth`` < 3) and a small fraction of ``json.loads`` on the same bytes.

Run: python benchmarks/rejection.py   (prints one line per size and a last summary line)
"""

from __future__ import annotations

import itertools
import json
import string
import time
from collections.abc import Callable
from functools import partial

from pydantic import ValidationError

from marrow_triage.adapters.cli.report_input import validation_lines
from marrow_triage.models import SymptomReport

ROUNDS = 7


def _body(keys: int) -> bytes:
    alphabet = string.ascii_letters + string.digits
    names = ("".join(k) for k in itertools.product(alphabet, repeat=3))
    report = {"hours_since_procedure": 1, **dict.fromkeys(itertools.islice(names, keys), 1)}
    return json.dumps(report, separators=(",", ":")).encode()


def _seconds(action: Callable[[], object]) -> float:
    """The median CPU time of ``ROUNDS`` runs."""
    times = []
    for _ in range(ROUNDS):
        started = time.process_time()
        action()
        times.append(time.process_time() - started)
    return sorted(times)[ROUNDS // 2]


def _refuse_parsed(data: object) -> None:
    try:
        SymptomReport.model_validate(data)
    except ValidationError:
        return
    raise AssertionError("the report was accepted")


def _cli_lines(raw: bytes) -> list[str]:
    try:
        SymptomReport.model_validate_json(raw)
    except ValidationError as exc:
        return validation_lines(exc)
    raise AssertionError("the report was accepted")


def main() -> None:
    refusals: dict[int, float] = {}
    for keys in (1_000, 29_612, 50_000):
        raw = _body(keys)
        parsed = json.loads(raw)
        parse = _seconds(partial(json.loads, raw))
        service = _seconds(partial(_refuse_parsed, parsed))
        cli = _seconds(partial(_cli_lines, raw))
        lines = len(_cli_lines(raw))
        refusals[keys] = service
        print(f"{keys:>6} unknown keys, {len(raw) / 1024:6.0f} KiB: json.loads "
              f"{parse * 1e3:7.2f} ms; service-side refusal {service * 1e3:6.3f} ms "
              f"({service / parse:.3f} x json.loads); CLI parse+refusal {cli * 1e3:7.2f} ms, "
              f"{lines} lines")
    growth = refusals[50_000] / refusals[1_000]
    print(f"refusal_growth_50000_vs_1000_keys={growth:.2f} (target < 3)")


if __name__ == "__main__":
    main()
