"""Loading a rule file costs work bounded by its length (issue 13, item 6).

A 1 KB file of 25 doubling aliases under ``any:`` ran past 60 s and 614 MB before it
was rejected. Anchors and aliases are refused before anything is built from them, as
are deep nesting, oversized files and keys written twice (YAML keeps the last silently).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from marrow_triage import RulePack
from marrow_triage.pack.yaml_text import MAX_DEPTH, MAX_FILE_BYTES
from test_rule_pack import assert_problem, load_error

RULE_HEAD = """\
rules:
  - id: bomb
    title: Alias bomb
    level: soon
    explanation: "Pain {site_pain}, 1/10 or more."
    advice: [Call.]
    source: {document: cancer-net-bmab, section: s, quote: q}
"""


def alias_bomb(levels: int = 25) -> str:
    """Each anchor is a condition of two copies of the one before: 2^levels tests."""
    lines = [RULE_HEAD.rstrip("\n"), "    when:", "      any:",
             "        - &a0 {site_pain: {at_least: 1}}"]
    lines += [f"        - &a{i} {{any: [*a{i - 1}, *a{i - 1}]}}" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_the_alias_bomb_is_about_a_kilobyte() -> None:
    assert 900 < len(alias_bomb().encode()) < 1500


def test_alias_bomb_under_any_is_rejected_at_once(pack_copy: Path) -> None:
    # In a child process with a deadline and a memory cap: before the fix this ran for
    # minutes and took hundreds of MB, which must fail the test rather than hang it.
    (pack_copy / "bomb.yaml").write_text(alias_bomb(), encoding="utf-8")
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
        from marrow_triage import RulePack, RulePackError
        try:
            RulePack.from_path({str(pack_copy)!r})
        except RulePackError as exc:
            print("\\n".join(str(p) for p in exc.problems))
            sys.exit(2)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    assert "bomb.yaml" in lines[0] and "file" in lines[0]
    assert "anchor &a0 refused" in lines[0] and "line 10" in lines[0]


@pytest.mark.parametrize(("text", "message"), [
    ("rules: &r []\nquestions: *r\n", "anchor &r refused"),
    ("base: &b {title: x}\nrules:\n  - <<: *b\n", "anchor &b refused"),
    ("rules: *nothing\n", "alias *nothing refused"),
])
def test_anchors_and_aliases_are_refused(pack_copy: Path, text: str, message: str) -> None:
    (pack_copy / "extra.yaml").write_text(text, encoding="utf-8")
    assert_problem(load_error(pack_copy), "extra.yaml", None, "file", message)


def test_nesting_past_the_cap_is_refused(pack_copy: Path) -> None:
    deep = "rules: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n"
    (pack_copy / "deep.yaml").write_text(deep, encoding="utf-8")
    assert_problem(load_error(pack_copy), "deep.yaml", None, "file",
                   f"nested more than {MAX_DEPTH} levels deep")


def test_a_file_past_the_size_cap_is_refused_unread(pack_copy: Path) -> None:
    with (pack_copy / "big.yaml").open("w", encoding="utf-8") as out:
        out.write("rules: []\n")
        out.write("# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    assert_problem(load_error(pack_copy), "big.yaml", None, "file",
                   f"larger than {MAX_FILE_BYTES:,} bytes")


def test_a_key_written_twice_is_refused(pack_copy: Path) -> None:
    # YAML keeps the last `when`: the fever test would silently vanish from the rule.
    text = (pack_copy / "warning-signs.yaml").read_text(encoding="utf-8")
    marker = "      temperature_c: {at_least: $fever_c}\n"
    assert marker in text
    text = text.replace(marker, marker + "    when:\n      chest_pain: {is: true}\n", 1)
    (pack_copy / "warning-signs.yaml").write_text(text, encoding="utf-8")
    assert_problem(load_error(pack_copy), "warning-signs.yaml", None, "file",
                   "key 'when' is written twice")


def test_a_number_too_long_to_read_is_a_clean_problem(pack_copy: Path) -> None:
    (pack_copy / "long.yaml").write_text("rules: " + "9" * 5000 + "\n", encoding="utf-8")
    assert_problem(load_error(pack_copy), "long.yaml", None, "file", "cannot be read")


def test_the_packaged_pack_uses_none_of_the_refused_features(pack: RulePack) -> None:
    assert len(pack.rules) > 20
