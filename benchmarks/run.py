"""`make bench`: marrow_triage against the durable_rules floor, a pure-Python reference and
zen-engine, on one realistic generated mix of reports, measured in one run.

    python benchmarks/run.py [--reports 3000] [--seed 20231107]

Contenders, all on the same reports, one thread, after a warm-up:

1. marrow_triage end to end: ``engine.triage(dict)`` (validation, facts, durable_rules,
   explanations).
2. durable_rules floor: the same compiled ruleset (``compile_pack``) in a bare ``Host``
   subclass with no-op actions; the report fact and one findings fact asserted, then the
   session deleted. Fact conversion is done before timing: this is durable_rules alone.
   Also shown: the C floor, the same calls made straight into durable_rules' C engine (as
   marrow_triage's engine does), without Host's per-action Python layer.
3. Pure-Python reference evaluator (tests/reference.py) on pre-validated reports: rule
   matching only, what no engine can beat.
4. zen-engine (GoRules) evaluating the same rule files compiled to a JDM decision graph
   (benchmarks/zen_compile.py) on the report dicts.

Ratios are what matter; absolute numbers depend on the machine. The last line is
``overhead_vs_durable_floor=… speedup_vs_zen=… batch_reports_per_s=…``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))  # the reference evaluator and the plain encoding

from mix import mixed_reports  # noqa: E402
from zen_compile import compile_jdm, zen_level  # noqa: E402

from marrow_triage import SymptomReport, TriageEngine, Urgency  # noqa: E402
from marrow_triage.engine.encode import compile_pack, count_field  # noqa: E402
from marrow_triage.pack.facts import report_facts  # noqa: E402
from plain_encoding import engine_fact  # noqa: E402

TARGETS = {"overhead": 1.3, "zen": 3.0, "p50_us": 100.0, "p99_us": 1000.0, "batch": 15000.0,
           "cold_ms": 300.0}


class Timing:
    """Wall-clock p50/p99 and throughput, plus CPU time per item of the measuring thread.

    Ratios use CPU time: on a shared machine, wall time also counts time spent waiting
    for a core, which says nothing about the evaluators. Each contender is measured in
    several rounds, interleaved with the others, so that a slow spell of the machine hits
    them all alike; CPU time is the median of the rounds' means, p50/p99 pool every sample.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.samples_ns: list[int] = []
        self.round_cpu_us: list[float] = []

    def add_round(self, samples_ns: list[int], cpu_ns: int) -> None:
        self.samples_ns.extend(samples_ns)
        self.round_cpu_us.append(cpu_ns / len(samples_ns) / 1000)

    @property
    def p50_us(self) -> float:
        return sorted(self.samples_ns)[len(self.samples_ns) // 2] / 1000

    @property
    def p99_us(self) -> float:
        ordered = sorted(self.samples_ns)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000

    @property
    def mean_us(self) -> float:
        return statistics.fmean(self.samples_ns) / 1000

    @property
    def per_s(self) -> float:
        return 1e6 / self.mean_us

    @property
    def cpu_us(self) -> float:
        return statistics.median(self.round_cpu_us)


Contender = tuple[str, Callable[[], Callable[[Any], object]], Sequence[Any]]
"""Name, a factory giving the call to time in one round (after its own warm-up), items."""


def measure(contenders: Sequence[Contender], rounds: int) -> list[Timing]:
    """Time every contender on its items, ``rounds`` times, round-robin."""
    timings = [Timing(name) for name, _make, _items in contenders]
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for timing, (_name, make, items) in zip(timings, contenders, strict=True):
            call = make()
            # As timeit does: no collector pauses inside the timed loop (see README).
            gc.collect()
            gc.disable()
            try:
                samples = []
                cpu_start = time.thread_time_ns()
                for item in items:
                    start = clock()
                    call(item)
                    samples.append(clock() - start)
                timing.add_round(samples, time.thread_time_ns() - cpu_start)
            finally:
                gc.enable()
    return timings


class _BareHost:
    """A durable ``Host`` without dispatch and timer threads (built on first use)."""

    def __new__(cls, definitions: dict[str, Any]) -> Any:
        from durable.engine import Host

        class BareHost(Host):  # type: ignore[misc]
            def _run(self) -> None:
                return None

        return BareHost(definitions)


def floor_facts(engine: TriageEngine,
                reports: Sequence[SymptomReport]) -> list[list[dict[str, Any]]]:
    """Per report, the facts marrow_triage's engine asserts for it: the report fact, and
    the findings fact when an escalation rule could match (with the counts it would have).
    """
    compiled = compile_pack(engine.pack)
    escalations = {rule.id for rule in engine.pack.rules if rule.when_findings is not None}
    prepared = []
    for report in reports:
        counts = {count_field(level): 0 for level in Urgency}
        for finding in engine.triage(report).findings:
            if finding.rule_id not in escalations:
                counts[count_field(finding.level)] += 1
        facts = [{**engine_fact(report_facts(report)), "t": "report", "sid": "0", "id": "r"}]
        if any(counts[key] >= least for key, least in compiled.escalation_thresholds.items()):
            facts.append({"t": "findings", "sid": "0", "id": "f0", **counts})
        prepared.append(facts)
    return prepared


def durable_floor(engine: TriageEngine) -> Callable[[list[dict[str, Any]]], object]:
    """durable_rules through its own Python API (``Host``): the same compiled ruleset and
    facts as marrow_triage, no-op actions, cleaned up as marrow_triage does (retracted from
    one session; deleting a session per report costs far more, see README)."""
    compiled = compile_pack(engine.pack)

    def noop(_closure: Any) -> None:
        return None

    host = _BareHost(compiled.definitions(lambda _key: noop))
    name = compiled.name

    def run(facts: list[dict[str, Any]]) -> None:
        for fact in facts:
            host.assert_fact(name, fact)
        for fact in facts:
            host.retract_fact(name, {"sid": "0", "id": fact["id"]})

    return run


def durable_c_floor(engine: TriageEngine, prepared: list[list[dict[str, Any]]]) -> tuple[
        Callable[[tuple[list[str], str]], object], list[tuple[list[str], str]]]:
    """The same, straight into durable_rules' C engine: facts encoded in advance, actions
    started and completed with nothing run, facts retracted. No engine can do less."""
    import durable_rules_engine as dre

    compiled = compile_pack(engine.pack)
    host = _BareHost(compiled.definitions(lambda _key: lambda _closure: None))
    handle = host.get_ruleset(compiled.name)._handle
    items = [([json.dumps(f) for f in facts],
              json.dumps([{"sid": "0", "id": f["id"]} for f in facts])) for facts in prepared]

    def run(item: tuple[list[str], str]) -> None:
        facts, retraction = item
        for fact in facts:
            state_handle = dre.assert_fact(handle, fact)[1]
            action = dre.start_action_for_state(handle, state_handle)
            if action:
                message = action[1]
                while message:
                    message = dre.complete_and_start_action(handle, state_handle)
        dre.retract_facts(handle, retraction)

    return run, items


def warmed(call: Callable[[Any], object],
           items: Sequence[Any]) -> Callable[[], Callable[[Any], object]]:
    """A contender factory: the same call every round, warmed up once on some items."""
    def make() -> Callable[[Any], object]:
        if not done:
            for item in items[: max(200, len(items) // 10)]:
                call(item)
            done.append(True)
        return call

    done: list[bool] = []
    return make


def cold_start(runs: int = 5) -> tuple[float, float, float]:
    """Median ms for import + load + compile in a fresh interpreter, its peak RSS MB, and
    the median ms of the part no pydantic-based library avoids: importing pydantic and
    defining one model (which makes pydantic import its plugin machinery and scan every
    installed distribution's entry points). Runs alternate, so both see the same machine.

    Peak RSS is the child's VmHWM: ru_maxrss would carry over the parent's across exec.
    """
    script = (
        "import time; t = time.perf_counter()\n"
        "from marrow_triage import TriageEngine\n"
        "e = TriageEngine.default()\n"
        "ms = (time.perf_counter() - t) * 1000\n"
        "e.triage({'hours_since_procedure': 5})\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(ms, hwm.split()[1])\n"
    )
    floor_script = (
        "import time; t = time.perf_counter()\n"
        "import pydantic\n"
        "class One(pydantic.BaseModel):\n"
        "    x: int\n"
        "print((time.perf_counter() - t) * 1000)\n"
    )
    times, peaks, floors = [], [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True).stdout.split()
        times.append(float(out[0]))
        peaks.append(int(out[1]) / 1024)
        floors.append(float(subprocess.run([sys.executable, "-c", floor_script],
                                           capture_output=True, text=True,
                                           check=True).stdout))
    return statistics.median(times), statistics.median(peaks), statistics.median(floors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=20231107)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import zen

    from reference import ReferencePack

    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs; {args.reports} reports, seed {args.seed}")
    engine = TriageEngine.default()
    dicts = mixed_reports(args.reports, args.seed)
    validated = [SymptomReport.model_validate(d) for d in dicts]
    results = [engine.triage(d) for d in dicts]
    mix = {lv.value: sum(r.level is lv for r in results) for lv in Urgency}
    print("mix: " + ", ".join(f"{k} {v / len(results):.0%}" for k, v in mix.items()))

    reference = ReferencePack(ROOT / "rules")
    decision = zen.ZenEngine().create_decision(json.dumps(compile_jdm(engine.pack)))

    # Agreement of each evaluator with marrow_triage on the mix.
    ref_level = ref_exact = zen_lv = zen_exact = 0
    for d, report, result in zip(dicts, validated, results, strict=True):
        ours = {f.rule_id for f in result.findings}
        ours_q = {q.field for q in result.questions}
        verdict = reference.evaluate(report, questions=False)
        ref_level += verdict.level == result.level.value
        ref_exact += set(verdict.rules) == ours
        level, rules, _questions = zen_level(engine.pack, decision.evaluate(d)["result"])
        zen_lv += level == result.level.value
        zen_exact += rules == ours
        del ours_q
    n = len(dicts)
    print(f"agreement with marrow_triage: reference level {ref_level / n:.2%}, findings "
          f"{ref_exact / n:.2%}; zen level {zen_lv / n:.2%}, findings {zen_exact / n:.2%}")

    prepared = floor_facts(engine, validated)
    c_floor_call, c_floor_items = durable_c_floor(engine, prepared)
    chunk = 1000
    batches = [dicts[i:i + chunk] for i in range(0, len(dicts), chunk)]
    # marrow_triage shares findings and results between equal reports through caches.
    # So that a round does not time the cache of an earlier one, each round uses a new
    # engine warmed up on other reports of the same mix (as a running service would be).
    unseen = mixed_reports(max(200, args.reports // 10), args.seed + 1)

    def fresh_engine() -> TriageEngine:
        fresh = TriageEngine(engine.pack)
        fresh.triage_many(unseen)
        for report in unseen:
            fresh.triage(report)
        return fresh

    *timings, batch = measure([
        ("marrow_triage end to end", lambda: fresh_engine().triage, dicts),
        ("durable_rules floor (Host)", warmed(durable_floor(engine), prepared), prepared),
        ("durable_rules C floor", warmed(c_floor_call, c_floor_items), c_floor_items),
        # Rule matching only, as documented: its questions are a brute force over answers
        # (written for clarity, ~8 ms a report), no fair figure for an evaluator.
        ("reference evaluator (Python)",
         warmed(functools.partial(reference.evaluate, questions=False), validated), validated),
        ("zen-engine (JDM)", warmed(decision.evaluate, dicts), dicts),
        ("triage_many", lambda: fresh_engine().triage_many, batches),
    ], rounds=args.rounds)
    e2e, floor, c_floor, _ref, zen_t = timings

    per_batch = statistics.fmean(len(b) for b in batches)
    batch_wall_per_s = batch.per_s * per_batch
    batch_per_s = 1e6 / batch.cpu_us * per_batch  # per CPU-second
    cold_ms, cold_rss, pydantic_ms = cold_start()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print()
    print(f"{'evaluator':<32}{'p50 µs':>10}{'p99 µs':>10}{'mean µs':>10}{'reports/s':>12}"
          f"{'CPU µs':>9}{'CPU vs e2e':>12}")
    for t in timings:
        print(f"{t.name:<32}{t.p50_us:>10.1f}{t.p99_us:>10.1f}{t.mean_us:>10.1f}"
              f"{t.per_s:>12,.0f}{t.cpu_us:>9.1f}{t.cpu_us / e2e.cpu_us:>11.2f}x")
    print(f"{'triage_many (batches of 1000)':<32}{'':>30}{batch_wall_per_s:>12,.0f}"
          f"{1e6 / batch_per_s:>9.1f}")
    print()
    overhead = e2e.cpu_us / floor.cpu_us
    speedup = zen_t.cpu_us / e2e.cpu_us
    checks = [
        ("overhead vs durable floor", f"{overhead:.2f}x", f"<= {TARGETS['overhead']}x",
         overhead <= TARGETS["overhead"]),
        ("speedup vs zen-engine", f"{speedup:.2f}x", f">= {TARGETS['zen']}x",
         speedup >= TARGETS["zen"]),
        ("p50 end to end", f"{e2e.p50_us:.0f} µs", f"<= {TARGETS['p50_us']:.0f} µs",
         e2e.p50_us <= TARGETS["p50_us"]),
        ("p99 end to end", f"{e2e.p99_us:.0f} µs", f"<= {TARGETS['p99_us']:.0f} µs",
         e2e.p99_us <= TARGETS["p99_us"]),
        ("batch throughput (per CPU-second)", f"{batch_per_s:,.0f}/s",
         f">= {TARGETS['batch']:,.0f}/s",
         batch_per_s >= TARGETS["batch"]),
        ("cold start (import+load+compile)", f"{cold_ms:.0f} ms",
         f"<= {TARGETS['cold_ms']:.0f} ms", cold_ms <= TARGETS["cold_ms"]),
        ("  pydantic alone (import, 1 model)", f"{pydantic_ms:.0f} ms", "-", True),
        ("peak RSS (this run / cold engine)", f"{peak_mb:.0f} / {cold_rss:.0f} MB", "-", True),
    ]
    for label, value, target, ok in checks:
        mark = "ok" if ok else "MISSED" if target != "-" else ""
        print(f"{label:<36}{value:>16}  target {target:<12} {mark}")
    print(f"(overhead vs the C-level floor, without durable's Python action layer: "
          f"{e2e.cpu_us / c_floor.cpu_us:.2f}x)")
    print(f"overhead_vs_durable_floor={overhead:.2f} speedup_vs_zen={speedup:.2f} "
          f"batch_reports_per_s={batch_per_s:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
