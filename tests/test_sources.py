"""Citations: every quote a rule marks `verbatim` is the source document's exact words.

The source text lives outside the repository, in ``<repo>/../shared/sources`` (CI puts
it there). Quotes are compared after collapsing runs of whitespace, because YAML folds
long quotes onto several lines; nothing else is normalised.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = REPO_ROOT / "rules"
SOURCES_DIR = REPO_ROOT.parent / "shared" / "sources"
DOCUMENT_FILES = {"cancer-net-bmab": "cancer-net-bone-marrow-aspiration-and-biopsy.txt"}


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def citations() -> list[tuple[str, str, dict[str, Any]]]:
    """(file, rule id, source) for every rule or timeline rule in every rule file."""
    found = []
    for path in sorted(RULES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for items in data.values():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("source"), dict):
                    found.append((path.name, str(item.get("id")), item["source"]))
    return found


CITATIONS = citations()
VERBATIM = [c for c in CITATIONS if c[2].get("verbatim", True)]


def source_text(document: str) -> str:
    path = SOURCES_DIR / DOCUMENT_FILES[document]
    if not path.is_file():
        message = f"source text {path} is missing: it lives in ../shared/sources beside the repo"
        if os.environ.get("CI"):  # CI always has it: a missing source there is a failure
            pytest.fail(message)
        pytest.skip(message + " (checked in CI)")
    return path.read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    """Heading -> the text under it. A heading is a short line that is not a bullet and
    does not end a sentence; the text before the first heading is the introduction."""
    out: dict[str, list[str]] = {"(introduction)": []}
    current = "(introduction)"
    for number, line in enumerate(text.splitlines()):
        stripped = line.strip()
        heading = (number > 3 and stripped and len(stripped) < 90 and not line.startswith(" ")
                   and not stripped.endswith((".", ":")))
        if heading:
            current = stripped
            out[current] = []
        else:
            out[current].append(line)
    return {k: collapse("\n".join(v)) for k, v in out.items()}


def test_the_rules_cite_the_article() -> None:
    assert len(VERBATIM) >= 15
    assert {c[2]["document"] for c in VERBATIM} == set(DOCUMENT_FILES)


def test_the_source_text_is_the_cited_article() -> None:
    text = source_text("cancer-net-bmab")
    pack = yaml.safe_load((RULES_DIR / "pack.yaml").read_text(encoding="utf-8"))
    document = pack["documents"]["cancer-net-bmab"]
    assert text.splitlines()[0].strip() == document["title"]
    assert "07/2023" in text and "07/2023" in document["published"]


@pytest.mark.parametrize(("file", "rule_id", "source"), VERBATIM,
                         ids=[f"{c[0]}:{c[1]}" for c in VERBATIM])
def test_verbatim_quotes_are_the_articles_words(file: str, rule_id: str,
                                               source: dict[str, Any]) -> None:
    assert source["document"] in DOCUMENT_FILES, (
        f"{file} {rule_id}: no source text for {source['document']!r}, so the quote cannot "
        "be verbatim; set `verbatim: false` or add the text to ../shared/sources")
    text = collapse(source_text(source["document"]))
    assert collapse(source["quote"]) in text, f"{file} {rule_id}: quote not in the article"


SECTION_CASES = [pytest.param(*c, id=f"{c[0]}:{c[1]}") for c in VERBATIM]


@pytest.mark.parametrize(("file", "rule_id", "source"), SECTION_CASES)
def test_verbatim_quotes_are_under_the_cited_section(file: str, rule_id: str,
                                                     source: dict[str, Any]) -> None:
    parts = sections(source_text(source["document"]))
    assert source["section"] in parts, (
        f"{file} {rule_id}: no section {source['section']!r}; sections are {list(parts)}")
    where = [name for name, body in parts.items() if collapse(source["quote"]) in body]
    assert source["section"] in where, (
        f"{file} {rule_id}: the quote is under {where}, not {source['section']!r}")


def test_the_article_is_cited_verbatim_wherever_it_is_cited() -> None:
    """We hold the article's text, so a citation of it has no reason to paraphrase."""
    paraphrased = [(f, r) for f, r, s in CITATIONS
                   if s["document"] in DOCUMENT_FILES and not s.get("verbatim", True)]
    assert paraphrased == []


def test_a_changed_quote_would_be_caught() -> None:
    text = collapse(source_text("cancer-net-bmab"))
    assert collapse("Fever of 101 degrees Fahrenheit/38.3 degrees Celsius or higher") in text
    assert "Fever of 100.4 degrees Fahrenheit/38.0 degrees Celsius or higher" not in text
