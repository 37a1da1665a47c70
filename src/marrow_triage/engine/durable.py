"""The durable_rules boundary: the only module that calls durable_rules.

It does two jobs: keep durable_rules' C engine out of the states that crash the process,
and make an evaluation cheap. ``encode`` says *what* the engine sees (the compiled
ruleset and the numbers in it); this module says *how* it gets there.

What keeps the process alive (each has a regression test in test_durable_regressions.py):

* a host keeps one session (``sid``) for its whole life: an evaluation asserts its facts,
  runs the actions, then retracts the facts and checks that the session is empty again.
  Sessions never pile up (a thousand of them end in ``MemoryError``), and none is created
  and deleted per report. A catch-all rule (``encode.CATCH_ALL``) still handles every
  fact, so deleting a session or ruleset is safe;
* reports are asserted as *facts*, never posted as events, so every matching rule fires;
* a host is used by one thread at a time for a whole evaluation: hosts live in a pool
  (:class:`EvaluatorPool`), checked out for one evaluation (assert, collect, retract);
* each host gets its own deep copy of the definitions, and starts no timer threads;
* after ``fork`` the child builds new hosts instead of sharing the parent's.

The speed tricks, each measured (figures in benchmarks/README.md) and each checked
against the plain form by a test:

* **Facts as JSON text built by hand** (:func:`fact_members`, :func:`report_members`):
  ``json.dumps`` of a fact dict cost as much as durable_rules' matching. Names and enum
  values come from a table of JSON literals; a report is read field by field from
  ``report.__dict__`` through one encoder per field, with booleans looked up in a
  ``{True: …, False: …}`` table; numbers become whole millionths straight from the decimal
  the patient typed (``repr()`` read as ``n / d`` in integers), with no ``Fraction`` or
  ``Decimal`` in between. test_fact_encoding.py holds these to the plain encoding.
* **``Host.assert_fact`` re-implemented** (:meth:`Evaluator._assert`): it calls the C
  engine through the ruleset's private ``_handle`` and reads the fired rule's name out of
  the action message's raw JSON, instead of durable_rules' per-action Python layer (a
  closure, and the session state decoded and re-encoded as JSON for every action). Our
  actions keep no state, so nothing of that layer is needed.
* **One session per host, retracted, not deleted**: creating and deleting a session per
  report allocates in C, and the heap growth and trimming around it slowed evaluations
  once many results were alive.
* **The findings fact only when it can matter**: escalation rules count findings in a
  summary fact; it is asserted only while some count reaches the least any escalation
  rule needs (``CompiledRuleset.escalation_thresholds``).
* **The host pool**: hosts (and their C rulesets) are built once and reused, not per
  report; a ruleset's C state is freed when its host is dropped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from marrow_triage.engine.encode import (
    CATCH_ALL,
    QUESTION_PREFIX,
    RULE_PREFIX,
    SCALE,
    CompiledRuleset,
    count_field,
    engine_number,
    parse_question_key,
)
from marrow_triage.errors import EngineError, InstallError, Problem, RulePackError
from marrow_triage.models import SymptomReport, TemperatureUnit, Urgency
from marrow_triage.pack.facts import READ_PLAN, TIMELINE_FACT_FIELDS, FactValue
from marrow_triage.units import decimal_of

# durable-rules is compiled from source on install; 2.0.28 calls PyEval_CallObject, which
# Python 3.13 removed, so a build without this mapping fails to load ("undefined symbol").
# Its setup.py overwrites CFLAGS, hence CPPFLAGS; --no-cache-dir so that pip does not reuse
# a wheel it built earlier without the flag (scripts/install-durable-rules does the same).
REBUILD_DURABLE_RULES = (
    "CPPFLAGS=-DPyEval_CallObject=PyObject_CallObject "
    "pip install --no-cache-dir --force-reinstall durable-rules==2.0.28"
)
try:
    import durable_rules_engine  # type: ignore[import-not-found]
    from durable.engine import Host
except ImportError:  # one sentence of what to do, not the loader's undefined-symbol error
    raise InstallError(
        "marrow_triage cannot load durable-rules' C engine, which must be compiled for this "
        f"Python: rebuild it with `{REBUILD_DURABLE_RULES}` (needs gcc and the Python headers)."
    ) from None

__all__ = ["REBUILD_DURABLE_RULES", "Evaluator", "EvaluatorPool", "Fired", "fact_members",
           "report_members"]


# --- Facts as JSON text --------------------------------------------------------------

_JSON_STRINGS: Mapping[str, str] = MappingProxyType({
    text: json.dumps(text)
    for field in TIMELINE_FACT_FIELDS.values()
    for text in (field.name, *field.values)
})
"""JSON literals of every fact name and enum value, computed once."""
_TEXT_FACTS = frozenset(f.name for f in TIMELINE_FACT_FIELDS.values() if f.kind == "text")
"""Free-text facts: only their presence enters the engine (``true``), never the text,
which is never interpreted and may hold anything."""


def fact_members(facts: Mapping[str, FactValue]) -> str:
    """The members of a fact's JSON object (``"name":value,…``) as durable_rules sees them."""
    return ",".join(f"{_json_string(name)}:"
                    f"{'true' if name in _TEXT_FACTS else _json_value(value)}"
                    for name, value in facts.items())


def report_members(report: SymptomReport) -> str:
    """:func:`fact_members` of ``report_facts(report)``, computed without fractions.

    The engine's whole millionths come straight from the decimal the patient typed, as
    ``n / d`` in integers: ``floor(n·10⁶ / d)``, and in °F ``floor((n − 32d)·5·10⁶ / 9d)``.
    """
    encoders = _MEMBER_ENCODERS
    return ",".join([encoders[field](value) for field, value in report.__dict__.items()
                     if value is not None and field in encoders])


def _member_encoder(name: str, kind: str) -> Callable[[Any], str]:
    """Encodes one answered report field as the member of its fact."""
    prefix = f"{_json_string(name)}:"
    if name == "temperature_c":
        return lambda reading: prefix + str(_engine_celsius(reading.value, reading.unit))
    if kind == "number":
        return lambda value: prefix + str(_engine_decimal(value))
    if kind == "integer":
        return lambda value: prefix + str(value * SCALE)
    if kind == "boolean":
        return {True: prefix + "true", False: prefix + "false"}.__getitem__
    if kind == "text":
        return lambda _text: prefix + "true"
    return lambda member: prefix + _json_string(str(member.value))


def _written(value: float | int) -> tuple[int, int]:
    """``(n, d)``, ``d > 0``, with ``n / d`` exactly the decimal ``value`` was written as."""
    if isinstance(value, int):
        return value, 1
    text = repr(value)
    if "e" in text:  # exponent form: rare, let Decimal read it
        return decimal_of(value).as_integer_ratio()
    whole, _, fraction = text.partition(".")
    return int(whole + fraction), 10 ** len(fraction)


def _engine_decimal(value: float | int) -> int:
    numerator, denominator = _written(value)
    return numerator * SCALE // denominator


def _engine_celsius(value: float | int, unit: TemperatureUnit) -> int:
    numerator, denominator = _written(value)
    if unit is TemperatureUnit.CELSIUS:
        return numerator * SCALE // denominator
    # floor((n/d − 32) · 5/9 · 10⁶), in integers.
    return (numerator - 32 * denominator) * 5 * SCALE // (9 * denominator)


def _json_string(text: str) -> str:
    return _JSON_STRINGS.get(text) or json.dumps(text)


def _json_value(value: FactValue) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _json_string(value)
    return str(engine_number(value))


_MEMBER_ENCODERS: Mapping[str, Callable[[Any], str]] = MappingProxyType({
    report_field: _member_encoder(name, kind) for name, report_field, kind in READ_PLAN
})
"""Report field name to its encoder, for the fields that are facts."""


# --- Hosts and evaluations -----------------------------------------------------------

class Fired:
    """What fired for one report: rule ids and question ids, in firing order."""

    __slots__ = ("questions", "rules")

    def __init__(self) -> None:
        self.rules: dict[str, None] = {}
        self.questions: dict[str, None] = {}


class _QuietHost(Host):  # type: ignore[misc]
    """A durable_rules host without the background dispatch and timer threads.

    Those threads call into the same C ruleset as the evaluating thread, which is one of
    the ways durable_rules crashes. Evaluations here are synchronous and use no timers.
    """

    def _run(self) -> None:
        return None


class Evaluator:
    """One host of a compiled ruleset, for one evaluation at a time."""

    def __init__(self, compiled: CompiledRuleset, levels: Mapping[str, Urgency]) -> None:
        self._fired = Fired()
        self._count_keys = {level: count_field(level) for level in Urgency}
        self._no_counts = dict.fromkeys(self._count_keys.values(), 0)
        self._rule_count_key = {rule_id: count_field(level) for rule_id, level in levels.items()}
        self._thresholds = compiled.escalation_thresholds
        # durable_rules wants an action per rule; the Host never runs them: _assert reads
        # the C engine's action messages and records the rule itself.
        host = _QuietHost(compiled.definitions(lambda _key: _ignore))
        self._host = host
        self._handle = host.get_ruleset(compiled.name)._handle
        # What each rule's action records: (True, rule id), (False, question id) or None.
        self._records: dict[str, tuple[bool, str] | None] = {
            key: _record_of(key) for key in compiled.rules}
        # durable_rules never frees a ruleset's C state: free it when this evaluator is
        # dropped, unless an evaluation failed midway or we are in a forked child (where
        # a parent thread may have been changing it at the fork).
        self._c_state = _CState()
        finalizer = weakref.finalize(self, _release_ruleset, self._handle, os.getpid(),
                                     self._c_state)
        finalizer.atexit = False

    def evaluate(self, members: str,
                 base_counts: Mapping[Urgency, int] | None = None) -> Fired:
        """Assert the report fact, run escalations, retract every fact asserted.

        ``members`` are the report fact's JSON members (:func:`fact_members`).
        ``base_counts`` are findings (per level) found elsewhere that escalation rules
        count as well as this evaluation's own. Raises if the session is not empty
        afterwards; the caller then drops this evaluator.
        """
        self._fired = fired = Fired()
        self._c_state.clean = False
        self._c_state.has_session = True
        self._assert(f"{{{_REPORT_TAGS},{members}}}" if members else f"{{{_REPORT_TAGS}}}")
        summaries = 0
        # Escalations count findings; their own findings can feed higher escalations,
        # which the pack loader guarantees always raise the level, so this ends.
        seen = -1
        for layer in range(len(Urgency)):
            if len(fired.rules) == seen:
                break
            seen = len(fired.rules)
            if base_counts is None:
                counts = self._no_counts.copy()
            else:
                counts = {key: base_counts.get(level, 0)
                          for level, key in self._count_keys.items()}
            for rule_id in fired.rules:
                counts[self._rule_count_key[rule_id]] += 1
            if all(counts[key] < least for key, least in self._thresholds.items()):
                break  # no escalation rule can match, now or after more layers
            fields = ",".join(f'"{key}":{count}' for key, count in counts.items())
            self._assert(f'{{"t":"findings","sid":"{_SID}","id":"f{layer}",{fields}}}')
            summaries += 1
        self._retract(_RETRACTIONS[summaries])
        self._c_state.clean = True
        return fired

    def _assert(self, fact: str) -> None:
        """Assert one fact and record the rules it fires: ``Host.assert_fact`` for actions
        that keep no session state, without durable_rules' per-action Python layer."""
        handle = self._handle
        code, state_handle = durable_rules_engine.assert_fact(handle, fact)[:2]
        if code in (1, 2):  # not handled / already observed: impossible with a catch-all
            raise RuntimeError(f"durable_rules refused the fact (code {code})")
        if code == 3:
            state_handle = 0  # as durable_rules' own Ruleset.assert_fact does
        action = durable_rules_engine.start_action_for_state(handle, state_handle)
        if not action:
            return
        message = action[1]
        fired, records = self._fired, self._records
        while message:
            # The message is {"<rule name>": {...}}; rule names need no JSON escaping.
            try:
                record = records[message[2:message.index('"', 2)]]
            except BaseException:
                durable_rules_engine.abandon_action(handle, state_handle)
                raise
            if record is not None:
                (fired.rules if record[0] else fired.questions)[record[1]] = None
            # No update_state: our actions never change the session state.
            message = durable_rules_engine.complete_and_start_action(handle, state_handle)

    def _retract(self, keys: str) -> None:
        """Retract facts (a JSON list of session and id); the session must then be empty."""
        handle = self._handle
        code, state_handle = durable_rules_engine.retract_facts(handle, keys)[:2]
        if code not in (0, 3):
            raise RuntimeError(f"durable_rules refused the retraction (code {code})")
        if durable_rules_engine.start_action_for_state(handle, 0 if code == 3 else state_handle):
            raise RuntimeError("durable_rules started an action on retraction")
        left = durable_rules_engine.get_facts(handle, _SID)
        if left != "[]":
            raise RuntimeError(f"durable_rules session not empty after an evaluation: {left}")


_SID = "0"
_REPORT_TAGS = f'"t":"report","sid":"{_SID}","id":"r"'
_RETRACTIONS = tuple(
    json.dumps([{"sid": _SID, "id": "r"}] + [{"sid": _SID, "id": f"f{n}"} for n in range(layers)])
    for layers in range(len(Urgency) + 1)
)
"""JSON retracting the report fact and the first 0, 1, … findings facts (by that number)."""


def _ignore(_closure: Any) -> None:
    return None


def _record_of(key: str) -> tuple[bool, str] | None:
    if key == CATCH_ALL:
        return None
    if key.startswith(RULE_PREFIX):
        return True, key.removeprefix(RULE_PREFIX)
    return False, key.removeprefix(QUESTION_PREFIX)


class _CState:
    """What the finalizer of an evaluator needs to know about its C ruleset."""

    __slots__ = ("clean", "has_session")

    def __init__(self) -> None:
        self.clean = True
        """False while an evaluation runs, and forever if one failed midway."""
        self.has_session = False


def _release_ruleset(handle: int, pid: int, c_state: _CState) -> None:
    if c_state.clean and os.getpid() == pid:
        if c_state.has_session:
            # Empty here (checked after every evaluation). Deleting the ruleset alone
            # would leave the session's C allocations behind.
            durable_rules_engine.delete_state(handle, _SID)
        durable_rules_engine.delete_ruleset(handle)


class EvaluatorPool:
    """Evaluators of one compiled ruleset; each is checked out by one evaluation at a time.

    Safe to share between threads and across ``fork`` (a child builds its own hosts).
    ``levels`` maps each rule id to its level, for the escalations' counts.
    """

    def __init__(self, compiled: CompiledRuleset, levels: Mapping[str, Urgency]) -> None:
        self._compiled = compiled
        self._levels = dict(levels)
        self._lock = threading.Lock()
        self._pool: queue.SimpleQueue[Evaluator] = queue.SimpleQueue()
        self._pid = os.getpid()
        self._pool.put(_first_evaluator(compiled, self._levels))

    def checkout(self) -> Evaluator:
        """An evaluator for this thread alone; hand it back with :meth:`give_back`."""
        if os.getpid() != self._pid:
            # A forked child must not reuse hosts whose C state a parent thread may have
            # been changing at the moment of the fork.
            with self._lock:
                if os.getpid() != self._pid:
                    self._pool = queue.SimpleQueue()
                    self._pid = os.getpid()
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return Evaluator(self._compiled, self._levels)

    def give_back(self, evaluator: Evaluator) -> None:
        """Return an evaluator after an evaluation that completed normally.

        One that raised is never given back: its host may be in an unknown state.
        """
        self._pool.put(evaluator)

    def evaluate(self, members: str,
                 base_counts: Mapping[Urgency, int] | None = None) -> Fired:
        """Evaluate one fact (its JSON members) on a checked-out evaluator."""
        evaluator = self.checkout()
        try:
            fired = evaluator.evaluate(members, base_counts)
        except Exception as exc:
            raise EngineError(f"rule engine failed: {exc}") from exc
        self.give_back(evaluator)
        return fired


# --- Compiling: what durable_rules refuses, as rule-pack errors ------------------------

_REFUSALS = {
    106: "too many different tests below one point of the rule network",
    107: "more than 128 `missing` tests below one point of the rule network",
    108: "more than 257 rules end in the same test",
    113: "more than 14 any/all/one_of groups in one rule",
}
"""durable_rules' compile error codes (rules.h) in words, for the limits it enforces."""


def _first_evaluator(compiled: CompiledRuleset, levels: Mapping[str, Urgency]) -> Evaluator:
    """The first evaluator of a ruleset: compiling it is where durable_rules refuses one."""
    try:
        return Evaluator(compiled, levels)
    except Exception as exc:  # durable_rules raises bare Exception (or RecursionError)
        raise RulePackError(refusals(compiled, exc)) from None


def refusals(compiled: CompiledRuleset, error: BaseException) -> list[Problem]:
    """Which rules durable_rules refuses, each compiled alone with the catch-all; the
    ruleset as a whole when each rule compiles alone (a limit of the rules together)."""
    problems: list[Problem] = []
    named: set[str] = set()
    for key, rule in compiled.rules.items():
        if key == CATCH_ALL:
            continue
        alone = dataclasses.replace(compiled, name=f"{compiled.name}_alone", rules={
            key: rule, CATCH_ALL: compiled.rules[CATCH_ALL]})
        try:
            Evaluator(alone, {})  # freed at once (its finalizer deletes the C ruleset)
        except Exception as exc:
            record = _record_of(key)
            assert record is not None
            # A question compiles to one engine rule per rule it could make fire.
            rule_id = record[1] if record[0] else parse_question_key(record[1])[0]
            if rule_id not in named:
                named.add(rule_id)
                problems.append(Problem(
                    "when", f"the rule engine refused this rule: {_refusal(exc)}", "pack",
                    rule_id))
    if not problems:
        kind = "timeline rules" if compiled.name.startswith("marrow_timeline") else "rules"
        problems.append(Problem("rules", f"the rule engine refused the pack's {kind} taken "
                                f"together: {_refusal(error)}; use fewer or simpler rules",
                                "pack"))
    return problems


def _refusal(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "conditions nested too deeply"
    match = re.search(r"error code: (\d+)", str(error))
    code = int(match.group(1)) if match else None
    meaning = _REFUSALS.get(code or 0, "a limit of durable_rules")
    return f"{meaning} (durable_rules error {code})" if code else f"{meaning} ({error})"
