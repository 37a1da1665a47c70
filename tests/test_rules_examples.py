"""Worked examples for every rule and question of the packaged pack.

Each threshold is tried at the threshold and just either side of it; each example states
the level, the exact set of rules that fire, and (where it matters) the questions asked.
Findings' explanations must show the measured value and the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pytest

from marrow_triage import RulePack, TriageEngine, TriageResult, Urgency

HOURS = 30  # a typical check-in, the day after the procedure


def C(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "C"}


def F(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "F"}


@dataclass(frozen=True)
class Example:
    name: str
    report: dict[str, Any]
    level: Urgency
    rules: frozenset[str]
    shows: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Rule id -> text its explanation must contain (measured value, threshold)."""
    asks: frozenset[str] | None = None
    """Fields asked about, exactly (None: not checked)."""
    not_asked: frozenset[str] = frozenset()
    asks_first: tuple[str, ...] = ()
    """The first questions, in this order (the answers that could raise the level most)."""


def ex(name: str, level: str, rules: str | tuple[str, ...] = (), *,
       shows: dict[str, tuple[str, ...]] | None = None, asks: tuple[str, ...] | None = None,
       not_asked: tuple[str, ...] = (), asks_first: tuple[str, ...] = (),
       **report: Any) -> Example:
    report.setdefault("hours_since_procedure", HOURS)
    report = {key: value for key, value in report.items() if value is not None}
    rule_ids = (rules,) if isinstance(rules, str) else rules
    return Example(name, report, Urgency(level), frozenset(rule_ids), shows or {},
                   None if asks is None else frozenset(asks), frozenset(not_asked),
                   asks_first)


ALL_CLEAR_REST: dict[str, Any] = {
    "pain_trend": "better", "chills": False, "feels_feverish": False, "site_redness": False,
    "site_swelling": False, "site_warmth": False, "bruising": "none",
    "dizziness_or_fainting": False, "chest_pain": False, "breathlessness": False,
    "new_confusion": False, "generally_unwell": False, "nausea_or_vomiting": "none",
    "cough": False, "sore_throat": False, "headache": False,
    "leg_numbness_or_weakness": False, "rash": False, "burning_or_frequent_urination": False,
    "diarrhoea": False, "bleeding_elsewhere": False, "took_fever_reducing_medicine": False,
}
"""Every other symptom answered "no": a report with nothing left to ask but the risks."""


EXAMPLES = [
    # --- fever: 38.3 °C, exactly 100.94 °F ------------------------------------------
    ex("fever at 38.3 C", "urgent", "fever", temperature=C(38.3),
       shows={"fever": ("38.3 °C (100.9 °F)", "38.3 °C")}),
    ex("38.29 C is below the fever threshold", "soon", "borderline-temperature",
       temperature=C(38.29), shows={"borderline-temperature": ("38.29 °C", "38.3", "38.0")}),
    ex("38.31 C is fever", "urgent", "fever", temperature=C(38.31)),
    ex("fever at exactly 100.94 F (= 38.3 C)", "urgent", "fever", temperature=F(100.94),
       shows={"fever": ("100.94 °F (38.3 °C)", "38.3")}),
    ex("100.93 F is not fever", "soon", "borderline-temperature", temperature=F(100.93),
       shows={"borderline-temperature": ("100.93 °F (38.29 °C)", "38.3")}),
    ex("101.0 F is fever", "urgent", "fever", temperature=F(101.0),
       shows={"fever": ("101 °F (38.33 °C)", "38.3")}),
    ex("101.3 F is fever", "urgent", "fever", temperature=F(101.3),
       shows={"fever": ("101.3 °F (38.5 °C)",)}),
    ex("integer 39 C is fever", "urgent", "fever", temperature=C(39)),
    ex("highest plausible reading", "urgent", "fever", temperature=C(45.0)),
    # --- raised temperature 38.0-38.29 °C: soon, re-check in one hour --------------
    ex("38.0 C is raised", "soon", "borderline-temperature", temperature=C(38.0),
       shows={"borderline-temperature": ("38 °C", "38.0", "38.3")},
       not_asked=("temperature_c",)),
    ex("37.99 C is normal without risk factors", "self_care", (), temperature=C(37.99),
       low_white_cell_count=False, recent_chemotherapy=False,
       not_asked=("low_white_cell_count", "recent_chemotherapy", "temperature")),
    ex("37.99 C without risk information asks for it", "self_care", (),
       temperature=C(37.99), asks_first=("chest_pain", "breathlessness", "new_confusion",
                                         "low_white_cell_count", "recent_chemotherapy")),
    ex("38.01 C is raised", "soon", "borderline-temperature", temperature=C(38.01)),
    ex("100.4 F (= 38.0 C) is raised", "soon", "borderline-temperature",
       temperature=F(100.4), shows={"borderline-temperature": ("100.4 °F (38 °C)",)}),
    ex("100.39 F is normal", "self_care", (), temperature=F(100.39)),
    ex("lowest plausible reading", "self_care", (), temperature=C(30.0)),
    # --- febrile neutropenia: 38.0 °C with low white cells or recent chemo ---------
    ex("38.0 C with low white cells", "emergency",
       ("febrile-neutropenia", "borderline-temperature"), temperature=C(38.0),
       low_white_cell_count=True,
       shows={"febrile-neutropenia": ("38 °C (100.4 °F)", "38.0", "reported: yes",
                                      "reported: not answered")}),
    ex("37.99 C with low white cells", "emergency", "raised-temperature-with-neutropenia-risk",
       temperature=C(37.99), low_white_cell_count=True),
    ex("100.4 F with recent chemotherapy", "emergency",
       ("febrile-neutropenia", "borderline-temperature"), temperature=F(100.4),
       recent_chemotherapy=True, low_white_cell_count=False,
       shows={"febrile-neutropenia": ("100.4 °F", "38.0", "reported: no", "reported: yes")}),
    ex("100.39 F with recent chemotherapy", "emergency",
       "raised-temperature-with-neutropenia-risk", temperature=F(100.39),
       recent_chemotherapy=True),
    # --- at risk of neutropenia: 37.5 °C or more, or below 36.0 °C, is red --------------
    ex("37.5 C after chemotherapy", "emergency", "raised-temperature-with-neutropenia-risk",
       temperature=C(37.5), recent_chemotherapy=True,
       shows={"raised-temperature-with-neutropenia-risk": ("37.5 °C", "37.5", "38.0",
                                                           "reported: yes")}),
    ex("37.49 C after chemotherapy", "self_care", (), temperature=C(37.49),
       recent_chemotherapy=True),
    ex("37.51 C with low white cells", "emergency", "raised-temperature-with-neutropenia-risk",
       temperature=C(37.51), low_white_cell_count=True),
    ex("99.5 F (= 37.5 C) after chemotherapy", "emergency",
       "raised-temperature-with-neutropenia-risk", temperature=F(99.5),
       recent_chemotherapy=True,
       shows={"raised-temperature-with-neutropenia-risk": ("99.5 °F (37.5 °C)",)}),
    ex("37.9 C a week after chemotherapy", "emergency",
       "raised-temperature-with-neutropenia-risk", temperature=C(37.9),
       recent_chemotherapy=True, hours_since_procedure=168),
    ex("37.6 C without risk information", "self_care", (), temperature=C(37.6)),
    ex("37.6 C, no chemotherapy, white cells not low", "self_care", (), temperature=C(37.6),
       recent_chemotherapy=False, low_white_cell_count=False),
    ex("35.5 C with low white cells", "emergency", "low-temperature-with-neutropenia-risk",
       temperature=C(35.5), low_white_cell_count=True, hours_since_procedure=48,
       shows={"low-temperature-with-neutropenia-risk": ("35.5 °C", "36.0", "reported: yes")}),
    ex("35.99 C after chemotherapy", "emergency", "low-temperature-with-neutropenia-risk",
       temperature=C(35.99), recent_chemotherapy=True),
    ex("36.0 C after chemotherapy", "self_care", (), temperature=C(36.0),
       recent_chemotherapy=True),
    ex("36.01 C after chemotherapy", "self_care", (), temperature=C(36.01),
       recent_chemotherapy=True),
    ex("96.79 F after chemotherapy", "emergency", "low-temperature-with-neutropenia-risk",
       temperature=F(96.79), recent_chemotherapy=True),
    ex("35.5 C without risk factors", "self_care", (), temperature=C(35.5),
       low_white_cell_count=False, recent_chemotherapy=False),
    ex("feeling generally unwell after chemotherapy, normal temperature", "emergency",
       ("infection-signs-with-neutropenia-risk", "generally-unwell"), generally_unwell=True,
       recent_chemotherapy=True, temperature=C(36.8),
       shows={"infection-signs-with-neutropenia-risk": ("(yes)", "36.8 °C", "reported: yes")}),
    ex("shivering after chemotherapy at 37.6 C", "emergency",
       ("infection-signs-with-neutropenia-risk", "raised-temperature-with-neutropenia-risk",
        "chills"),
       chills=True, temperature=C(37.6), recent_chemotherapy=True),
    ex("feeling generally unwell, no risk factors", "soon", "generally-unwell",
       generally_unwell=True, low_white_cell_count=False, recent_chemotherapy=False,
       shows={"generally-unwell": ("reported: yes",)}),
    ex("fever medicine after chemotherapy", "urgent", "fever-medicine-with-neutropenia-risk",
       took_fever_reducing_medicine=True, recent_chemotherapy=True, temperature=C(36.9),
       shows={"fever-medicine-with-neutropenia-risk": ("reported: yes", "36.9 °C")}),
    ex("fever medicine, no risk, no symptoms", "self_care", (),
       took_fever_reducing_medicine=True, low_white_cell_count=False,
       recent_chemotherapy=False),
    ex("fever medicine while feeling feverish", "soon", "fever-medicine-while-feverish",
       took_fever_reducing_medicine=True, feels_feverish=True, temperature=C(37.0),
       low_white_cell_count=False, recent_chemotherapy=False,
       shows={"fever-medicine-while-feverish": ("reported: yes", "37 °C")}),
    ex("fever with low white cells", "emergency", ("febrile-neutropenia", "fever"),
       temperature=C(38.3), low_white_cell_count=True),
    ex("38.0 C, white cells not low, no chemo", "soon", "borderline-temperature",
       temperature=C(38.0), low_white_cell_count=False, recent_chemotherapy=False,
       not_asked=("low_white_cell_count", "recent_chemotherapy")),
    ex("38.0 C without risk information asks for it", "soon", "borderline-temperature",
       temperature=C(38.0), bleeding="none", site_discharge="none", site_pain=0,
       back_or_abdominal_pain=0, **ALL_CLEAR_REST,
       asks=("low_white_cell_count", "recent_chemotherapy", "other_concern")),
    ex("feeling feverish at 37.0 C asks about fever-reducing medicine", "self_care", (),
       temperature=C(37.0), bleeding="none", site_discharge="none", site_pain=0,
       back_or_abdominal_pain=0, low_white_cell_count=False, recent_chemotherapy=False,
       **{**ALL_CLEAR_REST, "feels_feverish": True, "took_fever_reducing_medicine": None},
       asks=("took_fever_reducing_medicine", "other_concern")),
    # --- bleeding -----------------------------------------------------------------
    ex("no bleeding", "self_care", (), bleeding="none", not_asked=("bleeding",)),
    ex("spots on the dressing are expected", "self_care", "blood-on-dressing",
       bleeding="spots_on_dressing", shows={"blood-on-dressing": ("spots on dressing",)}),
    ex("bleeding that stops with pressure", "self_care", "bleeding-stopped-with-pressure",
       bleeding="stops_with_pressure",
       shows={"bleeding-stopped-with-pressure": ("stops with pressure", "not answered")}),
    ex("stops with pressure, no thinners, platelets fine", "self_care",
       "bleeding-stopped-with-pressure", bleeding="stops_with_pressure",
       blood_thinners=False, low_platelet_count=False,
       not_asked=("blood_thinners", "low_platelet_count")),
    ex("stops with pressure, on blood thinners", "soon", "bleeding-with-bleeding-risk",
       bleeding="stops_with_pressure", blood_thinners=True,
       shows={"bleeding-with-bleeding-risk": ("stops with pressure", "reported: yes")}),
    ex("stops with pressure, low platelets", "soon", "bleeding-with-bleeding-risk",
       bleeding="stops_with_pressure", low_platelet_count=True, blood_thinners=False),
    ex("soaks the dressing", "urgent", "bleeding-does-not-stop", bleeding="soaks_dressing",
       shows={"bleeding-does-not-stop": ("soaks dressing",)},
       asks_first=("dizziness_or_fainting", "chest_pain", "breathlessness", "new_confusion",
                   "blood_thinners", "low_platelet_count"),
       asks=("dizziness_or_fainting", "chest_pain", "breathlessness", "new_confusion",
             "blood_thinners", "low_platelet_count")),
    ex("does not stop", "urgent", "bleeding-does-not-stop", bleeding="does_not_stop",
       dizziness_or_fainting=False, blood_thinners=False, low_platelet_count=False,
       shows={"bleeding-does-not-stop": ("does not stop",)}),
    ex("soaks the dressing with dizziness", "emergency",
       ("heavy-bleeding-with-dizziness", "bleeding-does-not-stop", "dizziness-or-fainting"),
       bleeding="soaks_dressing", dizziness_or_fainting=True,
       shows={"heavy-bleeding-with-dizziness": ("soaks dressing", "reported: yes")}),
    ex("does not stop, on blood thinners", "emergency",
       ("heavy-bleeding-with-bleeding-risk", "bleeding-does-not-stop"),
       bleeding="does_not_stop", blood_thinners=True,
       shows={"heavy-bleeding-with-bleeding-risk": ("does not stop", "reported: yes")}),
    ex("soaks the dressing, low platelets", "emergency",
       ("heavy-bleeding-with-bleeding-risk", "bleeding-does-not-stop"),
       bleeding="soaks_dressing", low_platelet_count=True, blood_thinners=False),
    ex("stops with pressure and dizziness", "soon",
       ("bleeding-stopped-with-pressure", "dizziness-or-fainting"),
       bleeding="stops_with_pressure", dizziness_or_fainting=True),
    ex("dizziness alone", "soon", "dizziness-or-fainting", dizziness_or_fainting=True,
       shows={"dizziness-or-fainting": ("reported: yes",)}),
    # --- discharge ------------------------------------------------------------------
    ex("no discharge", "self_care", (), site_discharge="none"),
    ex("clear discharge", "soon", "clear-discharge", site_discharge="clear",
       shows={"clear-discharge": ('"clear"',)}),
    ex("unusual discharge", "urgent", "unusual-discharge", site_discharge="unusual",
       shows={"unusual-discharge": ('"unusual"',)}),
    # --- pain at the site: 1-6 soreness, 7+ severe ---------------------------------
    ex("no site pain", "self_care", (), site_pain=0),
    ex("site pain 1 is soreness", "self_care", "site-soreness", site_pain=1,
       shows={"site-soreness": ("1/10", "below 7/10", "at least 1/10")}),
    ex("site pain 6 is soreness", "self_care", "site-soreness", site_pain=6,
       shows={"site-soreness": ("6/10", "7/10")}),
    ex("site pain 7 is severe", "urgent", "severe-site-pain", site_pain=7,
       shows={"severe-site-pain": ("7/10",)}),
    ex("site pain 8 is severe", "urgent", "severe-site-pain", site_pain=8,
       shows={"severe-site-pain": ("8/10", "7/10")}),
    ex("site pain 10 is severe", "urgent", "severe-site-pain", site_pain=10),
    # --- back or abdominal pain: 1-3 mild, 4-6 moderate, 7+ severe ----------------------
    ex("no back pain", "self_care", (), back_or_abdominal_pain=0),
    ex("back pain 1 is mild", "self_care", "mild-back-or-abdominal-pain",
       back_or_abdominal_pain=1, shows={"mild-back-or-abdominal-pain": ("1/10", "4/10")}),
    ex("back pain 3 is mild", "self_care", "mild-back-or-abdominal-pain",
       back_or_abdominal_pain=3, shows={"mild-back-or-abdominal-pain": ("3/10",)}),
    ex("back pain 4 is moderate", "soon", "moderate-back-or-abdominal-pain",
       back_or_abdominal_pain=4,
       shows={"moderate-back-or-abdominal-pain": ("4/10", "7/10")}),
    ex("back pain 6 is moderate", "soon", "moderate-back-or-abdominal-pain",
       back_or_abdominal_pain=6, shows={"moderate-back-or-abdominal-pain": ("6/10",)}),
    ex("back pain 7 is severe", "urgent", "severe-back-or-abdominal-pain",
       back_or_abdominal_pain=7, shows={"severe-back-or-abdominal-pain": ("7/10",)}),
    ex("back pain 10 is severe", "urgent", "severe-back-or-abdominal-pain",
       back_or_abdominal_pain=10),
    # --- site pain getting worse, or lasting beyond several days (72 hours) -------------
    ex("worse pain at 2 h", "soon", "site-pain-worsening", pain_trend="worse",
       hours_since_procedure=2, shows={"site-pain-worsening": ("worse", "not answered")}),
    ex("worsening pain of 6/10 on day 2", "soon", "site-pain-worsening", pain_trend="worse",
       site_pain=6, hours_since_procedure=48,
       shows={"site-pain-worsening": ("worse", "6/10")}),
    ex("site pain 1 at 72 h", "soon", "site-pain-beyond-several-days", site_pain=1,
       hours_since_procedure=72,
       shows={"site-pain-beyond-several-days": ("1/10", "72 hours (about 3 days)", "72")}),
    ex("site pain 1 at 71.99 h is soreness", "self_care", "site-soreness", site_pain=1,
       hours_since_procedure=71.99,
       shows={"site-soreness": ("71.99 hours", "72", "not answered")}),
    ex("site pain 3 at 72.01 h", "soon", "site-pain-beyond-several-days", site_pain=3,
       hours_since_procedure=72.01),
    ex("site pain 6 on day 14", "soon", "site-pain-beyond-several-days", site_pain=6,
       hours_since_procedure=336),
    ex("no site pain on day 5", "self_care", (), site_pain=0, hours_since_procedure=120),
    ex("site pain 2, better, day 2", "self_care", "site-soreness", site_pain=2,
       pain_trend="better", hours_since_procedure=48,
       shows={"site-soreness": ("better",)}),
    ex("same pain at 100 h", "self_care", (), pain_trend="same", hours_since_procedure=100),
    ex("better pain at 100 h", "self_care", (), pain_trend="better",
       hours_since_procedure=100),
    # --- sedation: drowsiness expected for 24 hours -----------------------------------
    ex("sedation at 23.99 h", "self_care", "sedation-recovery", received_sedation=True,
       hours_since_procedure=23.99,
       shows={"sedation-recovery": ("23.99 hours", "24", "reported: yes")}),
    ex("sedation at 0 h", "self_care", "sedation-recovery", received_sedation=True,
       hours_since_procedure=0),
    ex("sedation at 24 h", "self_care", (), received_sedation=True,
       hours_since_procedure=24),
    ex("no sedation at 2 h", "self_care", (), received_sedation=False,
       hours_since_procedure=2),
    # --- bruising -----------------------------------------------------------------
    ex("no bruising", "self_care", (), bruising="none"),
    ex("mild bruising is expected", "self_care", "mild-bruising", bruising="mild",
       shows={"mild-bruising": ('"mild"',)}),
    ex("large bruise", "soon", "large-bruising", bruising="large_or_spreading",
       shows={"large-bruising": ("large or spreading",)},
       asks_first=("chest_pain", "breathlessness", "new_confusion"),
       not_asked=("bruising",)),
    ex("large bruise on blood thinners", "urgent",
       ("large-bruising-with-bleeding-risk", "large-bruising"),
       bruising="large_or_spreading", blood_thinners=True,
       shows={"large-bruising-with-bleeding-risk": ("large or spreading", "reported: yes")}),
    ex("large bruise with low platelets", "urgent",
       ("large-bruising-with-bleeding-risk", "large-bruising"),
       bruising="large_or_spreading", low_platelet_count=True),
    ex("mild bruise on blood thinners", "self_care", "mild-bruising", bruising="mild",
       blood_thinners=True),
    # --- other after-effects and signs of infection --------------------------------
    ex("pain down the back of the leg", "self_care", "pain-down-back-of-leg",
       pain_down_back_of_leg=True, shows={"pain-down-back-of-leg": ("reported: yes",)}),
    ex("no pain down the leg", "self_care", (), pain_down_back_of_leg=False),
    ex("redness", "soon", "site-redness", site_redness=True,
       shows={"site-redness": ("reported: yes",)}),
    ex("swelling", "soon", "site-swelling", site_swelling=True,
       shows={"site-swelling": ("reported: yes",)}),
    ex("warmth", "soon", "site-warmth", site_warmth=True,
       shows={"site-warmth": ("reported: yes",)}),
    ex("no signs of infection", "self_care", (), site_redness=False, site_swelling=False,
       site_warmth=False, chills=False, feels_feverish=False),
    # --- chills and feeling feverish -------------------------------------------------
    ex("chills without a temperature asks for it", "soon",
       "feverish-temperature-not-taken", chills=True,
       shows={"feverish-temperature-not-taken": ("(yes)", "not answered")},
       asks_first=("chest_pain", "breathlessness", "new_confusion", "low_white_cell_count",
                   "recent_chemotherapy", "temperature"),
       not_asked=("chills",)),
    ex("feeling feverish without a temperature", "soon", "feverish-temperature-not-taken",
       feels_feverish=True, chills=False),
    ex("chills, no temperature, low white cells", "emergency",
       ("feverish-temperature-not-taken", "infection-signs-with-neutropenia-risk"),
       chills=True, low_white_cell_count=True,
       shows={"infection-signs-with-neutropenia-risk": ("(yes)", "not answered",
                                                        "reported: yes")}),
    ex("feeling feverish, no temperature, recent chemotherapy", "emergency",
       ("feverish-temperature-not-taken", "infection-signs-with-neutropenia-risk"),
       feels_feverish=True, recent_chemotherapy=True),
    ex("feeling feverish, no temperature, no infection risk", "soon",
       "feverish-temperature-not-taken", feels_feverish=True, low_white_cell_count=False,
       recent_chemotherapy=False),
    ex("chills at a normal temperature with low white cells", "emergency",
       ("chills", "infection-signs-with-neutropenia-risk"), chills=True,
       temperature=C(37.0), low_white_cell_count=True),
    ex("chills with a normal temperature", "soon", "chills", chills=True,
       temperature=C(37.2), shows={"chills": ("reported: yes", "37.2 °C")},
       not_asked=("temperature_c",)),
    ex("feeling feverish with a normal temperature", "self_care", (), feels_feverish=True,
       temperature=F(98.6)),
    ex("chills at 38.0 C: two ambers", "urgent",
       ("chills", "borderline-temperature", "multiple-amber-findings"),
       chills=True, temperature=C(38.0)),
    ex("chills with fever", "urgent", ("chills", "fever"), chills=True, temperature=C(38.3)),
    # --- emergencies on their own ---------------------------------------------------
    ex("chest pain alone", "emergency", "chest-pain", chest_pain=True,
       shows={"chest-pain": ("reported: yes",)}),
    ex("breathlessness alone", "emergency", "breathlessness", breathlessness=True,
       shows={"breathlessness": ("reported: yes",)}),
    ex("new confusion alone", "emergency", "new-confusion", new_confusion=True,
       shows={"new-confusion": ("reported: yes",)}),
    ex("none of them", "self_care", (), chest_pain=False, breathlessness=False,
       new_confusion=False, dizziness_or_fainting=False),
    # --- hidden bleeding: severe back or abdominal pain with dizziness ------------------
    ex("back pain 7 with dizziness", "emergency",
       ("hidden-bleeding", "severe-back-or-abdominal-pain", "dizziness-or-fainting"),
       back_or_abdominal_pain=7, dizziness_or_fainting=True, low_platelet_count=False,
       blood_thinners=False,
       shows={"hidden-bleeding": ("7/10", "reported: yes")}),
    ex("back pain 10 with fainting, platelets low", "emergency",
       ("hidden-bleeding", "severe-back-or-abdominal-pain", "dizziness-or-fainting"),
       back_or_abdominal_pain=10, dizziness_or_fainting=True, low_platelet_count=True),
    ex("back pain 6 with dizziness: two ambers", "urgent",
       ("moderate-back-or-abdominal-pain", "dizziness-or-fainting",
        "multiple-amber-findings"),
       back_or_abdominal_pain=6, dizziness_or_fainting=True),
    ex("back pain 8 without dizziness", "urgent", "severe-back-or-abdominal-pain",
       back_or_abdominal_pain=8, dizziness_or_fainting=False),
    # --- other common calls ---------------------------------------------------------------
    ex("new leg weakness", "urgent", "leg-numbness-or-weakness", leg_numbness_or_weakness=True,
       shows={"leg-numbness-or-weakness": ("reported: yes",)}),
    ex("nosebleed", "urgent", "bleeding-elsewhere", bleeding_elsewhere=True,
       shows={"bleeding-elsewhere": ("reported: yes",)}),
    ex("cannot keep fluids down", "urgent", "cannot-keep-fluids-down",
       nausea_or_vomiting="cannot_keep_fluids_down",
       shows={"cannot-keep-fluids-down": ("cannot keep fluids down",)}),
    ex("vomiting, fluids stay down", "soon", "vomiting",
       nausea_or_vomiting="vomiting_keeping_fluids_down",
       shows={"vomiting": ("vomiting keeping fluids down",)}),
    ex("feeling sick", "self_care", "nausea", nausea_or_vomiting="nausea",
       shows={"nausea": ('"nausea"',)}),
    ex("not feeling sick", "self_care", (), nausea_or_vomiting="none"),
    ex("cough", "soon", "cough", cough=True, shows={"cough": ("reported: yes",)}),
    ex("sore throat", "soon", "sore-throat", sore_throat=True,
       shows={"sore-throat": ("reported: yes",)}),
    ex("headache", "soon", "headache", headache=True, shows={"headache": ("reported: yes",)}),
    ex("rash", "soon", "rash", rash=True, low_platelet_count=False,
       shows={"rash": ("reported: yes",)}),
    ex("rash with low platelets", "urgent", ("rash", "rash-with-low-platelets"), rash=True,
       low_platelet_count=True,
       shows={"rash-with-low-platelets": ("reported: yes",)}),
    ex("burning urination", "soon", "urinary-symptoms", burning_or_frequent_urination=True,
       shows={"urinary-symptoms": ("reported: yes",)}),
    ex("diarrhoea", "soon", "diarrhoea", diarrhoea=True,
       shows={"diarrhoea": ("reported: yes",)}),
    ex("cough and sore throat: two ambers", "urgent",
       ("cough", "sore-throat", "multiple-amber-findings"), cough=True, sore_throat=True),
    ex("none of the other symptoms", "self_care", (), generally_unwell=False, cough=False,
       sore_throat=False, headache=False, leg_numbness_or_weakness=False, rash=False,
       burning_or_frequent_urination=False, diarrhoea=False, bleeding_elsewhere=False,
       took_fever_reducing_medicine=False),
    ex("another concern in free text", "soon", "other-concern",
       other_concern="My daughter thinks I look pale {site_pain}",
       shows={"other-concern": ("\u201cMy daughter thinks I look pale {site_pain}\u201d",
                                "a person must read it")}),
    ex("blank free text is not a concern", "self_care", (), other_concern="   "),
    # --- two ambers make a red --------------------------------------------------------
    ex("redness and swelling", "urgent",
       ("site-redness", "site-swelling", "multiple-amber-findings"),
       site_redness=True, site_swelling=True,
       shows={"multiple-amber-findings": ("2 findings", "2 or more",
                                          "Redness around the needle site")}),
    ex("three ambers", "urgent",
       ("site-redness", "site-warmth", "clear-discharge", "multiple-amber-findings"),
       site_redness=True, site_warmth=True, site_discharge="clear",
       shows={"multiple-amber-findings": ("3 findings", "2 or more")}),
    ex("one amber and after-effects", "soon",
       ("site-redness", "site-soreness", "mild-bruising"),
       site_redness=True, site_pain=3, bruising="mild"),
    ex("amber and urgent", "urgent", ("moderate-back-or-abdominal-pain", "severe-site-pain"),
       back_or_abdominal_pain=5, site_pain=9),
    ex("ambers and an emergency", "emergency",
       ("site-redness", "site-warmth", "multiple-amber-findings", "chest-pain"),
       site_redness=True, site_warmth=True, chest_pain=True),
    # --- nothing reported ------------------------------------------------------------
    ex("nothing reported asks every question that could raise the level", "self_care", (),
       asks=("chest_pain", "breathlessness", "new_confusion", "temperature", "bleeding",
             "site_discharge", "site_pain", "back_or_abdominal_pain",
             "nausea_or_vomiting", "leg_numbness_or_weakness", "bleeding_elsewhere",
             "pain_trend", "chills", "feels_feverish", "site_redness", "site_swelling",
             "site_warmth", "bruising", "dizziness_or_fainting", "generally_unwell",
             "cough", "sore_throat", "headache", "rash",
             "burning_or_frequent_urination", "diarrhoea", "other_concern"),
       asks_first=("chest_pain", "breathlessness", "new_confusion", "temperature")),
    ex("an all-clear report asks only for any other concern", "self_care", (),
       temperature=C(36.8), bleeding="none", site_discharge="none", site_pain=0,
       back_or_abdominal_pain=0, **ALL_CLEAR_REST, asks=("other_concern",)),
]


@pytest.fixture(scope="module")
def results(engine: TriageEngine) -> dict[str, TriageResult]:
    return {e.name: engine.triage(e.report) for e in EXAMPLES}


def test_example_names_are_unique() -> None:
    assert len({e.name for e in EXAMPLES}) == len(EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example(example: Example, results: dict[str, TriageResult], pack: RulePack) -> None:
    check_example(example, results[example.name], pack)


def check_example(example: Example, result: TriageResult, pack: RulePack) -> None:
    """Assert that ``result`` is what ``example`` expects (tests/mutation.py uses it too)."""
    fired = {f.rule_id for f in result.findings}
    assert fired == example.rules, result.summary
    assert result.level is example.level, result.summary
    assert result.action == pack.texts[f"levels.{example.level.value}.action"]
    by_id = {f.rule_id: f for f in result.findings}
    for rule_id, texts in example.shows.items():
        for text in texts:
            assert text in by_id[rule_id].explanation, (rule_id, by_id[rule_id].explanation)
    asked = {q.field for q in result.questions}
    if example.asks is not None:
        assert asked == example.asks
    assert not asked & example.not_asked
    first = [q.field for q in result.questions][:len(example.asks_first)]
    assert first == list(example.asks_first)
    outranked = example.level >= Urgency.URGENT
    for finding in result.findings:
        rule = pack.rule(finding.rule_id)
        assert finding.level is rule.level
        assert finding.source.quote == rule.source.quote
        if outranked and rule.level < example.level:
            # A lower finding keeps only what it adds ("also tell them about ..."), in the
            # result's advice and in the finding itself.
            assert finding.advice == rule.also_tell
            assert set(rule.also_tell) <= set(result.advice)
        else:
            assert finding.advice == rule.advice
            assert set(finding.advice) <= set(result.advice)
        if not outranked:
            assert set(rule.reassurance) <= set(result.reassurance)
    if outranked:
        assert result.reassurance == ()
    if example.level is Urgency.SELF_CARE and example.rules:
        assert result.reassurance, "an expected after-effect comes with reassurance"
    if example.level > Urgency.SELF_CARE:
        assert not result.reassurance or any(
            f.level is Urgency.SELF_CARE for f in result.findings)


def test_every_rule_has_examples_that_fire_it(pack: RulePack) -> None:
    covered = set().union(*(e.rules for e in EXAMPLES))
    assert {r.id for r in pack.rules} <= covered


def test_every_rule_has_an_example_checking_its_explanation(pack: RulePack) -> None:
    checked = set().union(*(e.shows.keys() for e in EXAMPLES))
    assert {r.id for r in pack.rules} <= checked


def test_every_question_is_asked_and_not_asked_in_some_example(pack: RulePack) -> None:
    from marrow_triage.pack.facts import FACT_FIELDS

    asked = set().union(*(e.asks or frozenset() for e in EXAMPLES),
                        *(e.asks_first for e in EXAMPLES))
    fields = {FACT_FIELDS[q.field].report_field for q in pack.questions}
    assert fields <= asked
    not_asked = set().union(*(e.not_asked for e in EXAMPLES))
    not_asked |= {f for e in EXAMPLES if e.asks is not None for f in fields - e.asks}
    assert fields <= not_asked


def test_every_numeric_threshold_is_tried_at_and_either_side(pack: RulePack) -> None:
    """For each `at_least`/`below` threshold, some example sits at it and on each side."""
    from marrow_triage.models import SymptomReport
    from marrow_triage.pack.conditions import field_tests
    from marrow_triage.pack.facts import report_facts

    values: dict[str, set[object]] = {}
    for e in EXAMPLES:
        for name, value in report_facts(SymptomReport.model_validate(e.report)).items():
            values.setdefault(name, set()).add(value)
    for rule in pack.rules:
        if rule.when is None:
            continue
        for test in field_tests(rule.when):
            if test.op in ("at_least", "below"):
                seen = values.get(test.field, set())
                assert test.value in seen, (rule.id, test)
                assert any(v < test.value for v in seen), (rule.id, test)  # type: ignore[operator]
                assert any(v > test.value for v in seen), (rule.id, test)  # type: ignore[operator]


def test_float_trap_100_94_fahrenheit(engine: TriageEngine) -> None:
    """100.94 as a binary float is 100.93999999999999772...; it must still be fever."""
    assert Fraction(100.94) < Fraction(10094, 100)  # the float is below the decimal
    result = engine.triage({"hours_since_procedure": 5, "temperature": F(100.94)})
    assert result.level is Urgency.URGENT


def test_json_entry_point_matches_dict_entry_point(engine: TriageEngine) -> None:
    text = '{"hours_since_procedure": 30, "temperature": {"value": 100.94, "unit": "F"}}'
    assert engine.triage_json(text) == engine.triage(
        {"hours_since_procedure": 30, "temperature": F(100.94)})


@pytest.mark.parametrize("hours", [-0.0, 0, 0.0])
def test_zero_hours_shows_as_0_however_it_was_written(hours: float) -> None:
    # Findings are cached by the values they show, so equal values must render the same.
    result = TriageEngine.default().triage({"hours_since_procedure": hours,
                                            "received_sedation": True})
    assert "it is 0 hours (about 0 days) since" in result.findings[0].explanation
