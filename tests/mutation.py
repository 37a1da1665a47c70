"""Mutation testing of the rule pack: every unsafe one-step edit of a rule must fail a test.

`make mutate` runs this file: for each mutant of rules/ (see marrow_triage.change.mutants)
it runs the behavioural test files with the mutant as the packaged pack, in a fresh pytest
process, and fails listing the survivors. tests/test_mutation.py is the fast form in
`make test`: the same mutants against the same worked examples, in-process.

    python tests/mutation.py [--jobs 2] [--only RULE_ID]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from marrow_triage import RulePack, RulePackError, TriageEngine  # noqa: E402
from marrow_triage.change.mutants import Mutant, pack_mutants  # noqa: E402
from test_rules_examples import EXAMPLES, check_example  # noqa: E402
from timeline_examples import TIMELINE_EXAMPLES, scenario_problems  # noqa: E402

RULES_DIR = HERE.parent / "rules"
BEHAVIOURAL_TESTS = ["tests/test_rules_examples.py", "tests/test_timeline_examples.py",
                     "tests/test_timeline.py"]
"""What `make mutate` runs per mutant: the tests that say what each report gets."""
RULES_ENV = "MARROW_TRIAGE_TEST_RULES"
"""Set to a pack directory, the suite's `pack` and `engine` fixtures use that pack."""


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    verdict: str
    """``killed``, ``refused`` (the pack loader rejects it) or ``survived``."""
    detail: str


def failing_examples(engine: TriageEngine) -> list[str]:
    """Names of the worked examples (report and timeline) that the engine gets wrong."""
    failed = []
    results = engine.triage_many([e.report for e in EXAMPLES])
    for example, result in zip(EXAMPLES, results, strict=True):
        try:
            check_example(example, result, engine.pack)
        except (AssertionError, KeyError):
            failed.append(f"test_rules_examples.py::test_example[{example.name}]")
    for scenario in TIMELINE_EXAMPLES:
        if scenario_problems(engine, scenario):
            failed.append(f"test_timeline_examples.py::test_timeline_example[{scenario.name}]")
    return failed


def judge_in_process(mutant: Mutant, workdir: Path) -> Outcome:
    """The fast form: the mutant against the worked examples, in this process."""
    target = mutant.write(RULES_DIR, workdir / "rules")
    try:
        engine = TriageEngine(RulePack.from_path(target))
    except RulePackError as exc:
        return Outcome(mutant, "refused", str(exc.problems[0]))
    failed = failing_examples(engine)
    if failed:
        return Outcome(mutant, "killed", f"{len(failed)} example(s), e.g. {failed[0]}")
    return Outcome(mutant, "survived", "every worked example still passes")


def judge_with_pytest(mutant: Mutant, workdir: Path) -> Outcome:
    """The full form: the behavioural test files, in a fresh pytest, with the mutant."""
    target = mutant.write(RULES_DIR, workdir / "rules")
    try:
        RulePack.from_path(target)
    except RulePackError as exc:
        return Outcome(mutant, "refused", str(exc.problems[0]))
    env = {**os.environ, RULES_ENV: str(target)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                          "-o", "addopts=", *BEHAVIOURAL_TESTS], cwd=HERE.parent, env=env,
                         capture_output=True, text=True, check=False)
    if run.returncode == 1:
        failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
        return Outcome(mutant, "killed", failed[0] if failed else "a test failed")
    if run.returncode == 0:
        return Outcome(mutant, "survived", "every behavioural test passes")
    raise RuntimeError(f"pytest could not run for {mutant.id}:\n{run.stdout}\n{run.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--only", help="Only the mutants of this rule id.")
    args = parser.parse_args()
    mutants = [m for m in pack_mutants(RULES_DIR) if args.only in (None, m.rule_id)]
    started = time.monotonic()

    def judge(mutant: Mutant) -> Outcome:
        with tempfile.TemporaryDirectory() as tmp:
            return judge_with_pytest(mutant, Path(tmp))

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = []
        for outcome in pool.map(judge, mutants):
            outcomes.append(outcome)
            print(f"{outcome.verdict:>8}  {outcome.mutant.id}: {outcome.detail}", flush=True)
    survivors = [o for o in outcomes if o.verdict == "survived"]
    print(f"\n{len(outcomes)} mutants in {time.monotonic() - started:.0f} s: "
          f"{sum(o.verdict == 'killed' for o in outcomes)} killed by tests, "
          f"{sum(o.verdict == 'refused' for o in outcomes)} refused by the pack checks, "
          f"{len(survivors)} survived")
    for outcome in survivors:
        print(f"SURVIVED: {outcome.mutant.id}")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
