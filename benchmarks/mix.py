"""A realistic, reproducible mix of symptom reports (JSON-form dicts).

Mostly expected after-effects (self-care), some reports that need a call to the care team
(soon / urgent), a few emergencies, and some partly answered reports that trigger
questions. The benchmarks and the reliability tests use the same generator, so "the mix"
means the same thing everywhere. Only the standard library is used; a fixed seed gives the
same list every time.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["mixed_reports"]

SELF_CARE_SHARE = 0.75
EMERGENCY_SHARE = 0.04


def _temperature(rng: random.Random, low_c: float, high_c: float) -> dict[str, Any]:
    celsius = round(rng.uniform(low_c, high_c), 1)
    if rng.random() < 0.4:
        return {"value": round(celsius * 9 / 5 + 32, 1), "unit": "F"}
    return {"value": celsius, "unit": "C"}


def _self_care(rng: random.Random) -> dict[str, Any]:
    report: dict[str, Any] = {
        "hours_since_procedure": round(rng.uniform(1, 120), 1),
        "temperature": _temperature(rng, 36.0, 37.8),
        "bleeding": rng.choice(["none", "none", "spots_on_dressing", "stops_with_pressure"]),
        "site_discharge": "none",
        "site_pain": rng.randint(0, 4),
        "back_or_abdominal_pain": rng.randint(0, 3),
    }
    for flag in ("pain_down_back_of_leg", "chills", "site_redness", "received_sedation"):
        if rng.random() < 0.15:
            report[flag] = flag in ("pain_down_back_of_leg", "received_sedation")
    if rng.random() < 0.3:
        report["bruising"] = rng.choice(["none", "mild"])
    if rng.random() < 0.2:
        report["pain_trend"] = rng.choice(["better", "same"])
    return report


def _needs_call(rng: random.Random) -> dict[str, Any]:
    report = _self_care(rng)
    sign = rng.randrange(7)
    if sign == 0:
        report["temperature"] = _temperature(rng, 38.0, 39.6)
    elif sign == 1:
        report["bleeding"] = rng.choice(["soaks_dressing", "does_not_stop"])
    elif sign == 2:
        report["site_discharge"] = "unusual"
    elif sign == 3:
        report["site_pain"] = rng.randint(5, 10)
    elif sign == 4:
        report["back_or_abdominal_pain"] = rng.randint(4, 10)
    elif sign == 5:
        report.update(site_redness=True, site_swelling=rng.random() < 0.5, site_warmth=True)
    else:
        report.pop("temperature")
        report.update(chills=True, feels_feverish=rng.random() < 0.5)
    return report


def _emergency(rng: random.Random) -> dict[str, Any]:
    report = _self_care(rng)
    kind = rng.randrange(4)
    if kind == 0:
        report["temperature"] = _temperature(rng, 38.0, 39.8)
        report[rng.choice(["low_white_cell_count", "recent_chemotherapy"])] = True
    elif kind == 1:
        report.update(bleeding="does_not_stop", dizziness_or_fainting=True)
    elif kind == 2:
        report.update(bleeding="soaks_dressing", blood_thinners=True)
    else:
        report[rng.choice(["chest_pain", "breathlessness", "new_confusion"])] = True
    return report


def _partial(report: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    keep = {k: v for k, v in report.items() if k == "hours_since_procedure" or rng.random() < 0.6}
    return keep


def mixed_reports(n: int, seed: int = 20231107) -> list[dict[str, Any]]:
    """``n`` report dicts: ~75 % self-care, ~21 % soon/urgent, ~4 % emergency."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < EMERGENCY_SHARE:
            report = _emergency(rng)
        elif roll < 1 - SELF_CARE_SHARE:
            report = _needs_call(rng)
        else:
            report = _self_care(rng)
        if rng.random() < 0.1:
            report = _partial(report, rng)
        out.append(report)
    return out
