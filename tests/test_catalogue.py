"""docs/rules.md is the catalogue generated from the packaged rule pack, and is current."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from marrow_triage import RulePack
from marrow_triage.pack.catalogue import render_catalogue

REPO_ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = REPO_ROOT / "docs" / "rules.md"


def test_docs_rules_md_is_current(pack: RulePack) -> None:
    expected = render_catalogue(pack)
    actual = CATALOGUE.read_text(encoding="utf-8") if CATALOGUE.exists() else ""
    if actual != expected:
        diff = "".join(list(difflib.unified_diff(
            actual.splitlines(keepends=True), expected.splitlines(keepends=True),
            "docs/rules.md", "generated from rules/"))[:40])
        raise AssertionError(
            "docs/rules.md is stale: regenerate it with `marrow-triage rules docs` "
            f"(or `make docs`) and commit it.\n{diff}")


def test_the_catalogue_lists_every_rule_and_question(pack: RulePack) -> None:
    text = render_catalogue(pack)
    assert pack.sha256 in text and pack.version in text
    for rule in pack.rules:
        assert f"### `{rule.id}`: {rule.title}" in text
        assert rule.source.quote in text
        for advice in rule.advice:
            assert advice in text
    for question in pack.questions:
        assert f"`{question.id}`" in text and question.text in text


def test_the_catalogue_states_conditions_in_words(pack: RulePack) -> None:
    text = render_catalogue(pack)
    assert "temperature_c is at least 38.3 (parameter `fever_c`)" in text
    assert ("temperature_c is at least 38 (parameter `neutropenic_fever_c`) and temperature_c "
            "is below 38.3 (parameter `fever_c`)") in text
    assert "2 or more findings at level soon" in text


def test_the_catalogue_follows_the_rules(pack_copy: Path, pack: RulePack) -> None:
    """A changed rule changes the catalogue, so a stale docs/rules.md is detected."""
    path = pack_copy / "warning-signs.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["rules"][0]["title"] = "Fever (renamed)"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    changed = render_catalogue(RulePack.from_path(pack_copy))
    assert changed != render_catalogue(pack)
    assert "Fever (renamed)" in changed
