"""Pack versions: the recorded hash and levels of each version, and the check on them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from marrow_triage import RulePack
from marrow_triage.adapters.cli.main import app
from marrow_triage.pack.catalogue import render_catalogue
from marrow_triage.pack.versions import check_versions, levels_of, record_version

RECORD = "marrow-triage rules release --record"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def set_version(pack_dir: Path, version: str) -> None:
    meta = pack_dir / "pack.yaml"
    data = yaml.safe_load(meta.read_text(encoding="utf-8"))
    text = meta.read_text(encoding="utf-8").replace(f"version: {data['version']}\n",
                                                   f"version: {version}\n", 1)
    meta.write_text(text, encoding="utf-8")


def edit_rule(pack_dir: Path, rule_id: str, **changes: object) -> None:
    for path in sorted(pack_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for section in ("rules", "timeline_rules"):
            for rule in data.get(section) or []:
                if rule.get("id") == rule_id:
                    rule.update(changes)
                    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                                    encoding="utf-8")
                    return
    raise AssertionError(f"no rule {rule_id}")


def test_the_packaged_version_is_recorded(pack: RulePack, rules_dir: Path) -> None:
    """Fails after a rule change until `marrow-triage rules release --record rules/` runs."""
    problems = check_versions(pack, "rules/")
    assert problems == [], "\n".join(map(str, problems))
    record = next(r for r in pack.changes if r.version == pack.version)
    assert record.sha256 == pack.sha256
    assert record.levels == levels_of(pack)


def test_a_change_without_a_new_record_fails_and_says_what_to_run(pack_copy: Path) -> None:
    edit_rule(pack_copy, "site-redness", title="Redness around the needle site (edited)")
    code, out = run("rules", "check", str(pack_copy))
    assert code == 2
    assert "the rules changed but the version did not" in out
    assert f"`{RECORD} {pack_copy}`" in out
    code, out = run("rules", "release", "--record", str(pack_copy))
    assert code == 0, out
    code, out = run("rules", "check", str(pack_copy))
    assert code == 0, out
    assert "(recorded)" in out


def test_a_new_version_must_be_recorded(pack_copy: Path, pack: RulePack) -> None:
    major, minor, patch = (int(p) for p in pack.version.split("."))
    new_version = f"{major}.{minor}.{patch + 1}"
    set_version(pack_copy, new_version)
    problems = check_versions(RulePack.from_path(pack_copy), pack_copy)
    assert [p.field for p in problems] == ["changes"]
    assert f"version {new_version} is not recorded" in problems[0].message
    text, _ = record_version(pack_copy)
    (pack_copy / "pack.yaml").write_text(text, encoding="utf-8")
    reloaded = RulePack.from_path(pack_copy)
    assert check_versions(reloaded, pack_copy) == []
    assert [r.version for r in reloaded.changes][-2:] == [pack.version, new_version]
    assert reloaded.changes[:-1] == pack.changes  # earlier records are kept as they were
    assert reloaded.sha256 != pack.sha256  # the version is part of the content


@pytest.mark.parametrize(("change", "what"), [
    ({"level": "soon"}, "fever: urgent → soon"),
    (None, "fever removed (was urgent)"),
])
def test_lowering_a_level_needs_a_major_version(pack_copy: Path, change: dict[str, str] | None,
                                                what: str) -> None:
    if change is None:
        path = pack_copy / "warning-signs.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["rules"] = [r for r in data["rules"] if r["id"] != "fever"]
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                        encoding="utf-8")
    else:
        edit_rule(pack_copy, "fever", **change)
    current = RulePack.from_path(pack_copy).version
    major = int(current.split(".")[0])
    set_version(pack_copy, f"{major}.9.0")
    assert run("rules", "release", "--record", str(pack_copy))[0] == 2  # recorded, still wrong
    code, out = run("rules", "check", str(pack_copy))
    assert code == 2
    assert what in out and "must be a new major version" in out
    assert f"`version: {major + 1}.0.0`" in out
    set_version(pack_copy, f"{major + 1}.0.0")
    assert run("rules", "release", "--record", str(pack_copy))[0] == 0
    assert run("rules", "check", str(pack_copy))[0] == 0


def test_raising_a_level_needs_no_major_version(pack_copy: Path) -> None:
    edit_rule(pack_copy, "site-redness", level="urgent")
    set_version(pack_copy, "1.99.0")
    assert run("rules", "release", "--record", str(pack_copy))[0] == 0
    assert run("rules", "check", str(pack_copy))[0] == 0


def test_recording_is_idempotent_and_keeps_the_rest_of_pack_yaml(pack_copy: Path) -> None:
    before = (pack_copy / "pack.yaml").read_text(encoding="utf-8")
    text, _ = record_version(pack_copy)
    assert text == before  # the packaged version is recorded already
    edit_rule(pack_copy, "chills", title="Chills or shivering (edited)")
    text, record = record_version(pack_copy, note="edited a title")
    assert text.split("changes:")[0] == before.split("changes:")[0]
    assert yaml.safe_load(text)["changes"][-1]["note"] == "edited a title"
    assert record.sha256 == RulePack.from_path(pack_copy).sha256


def test_a_tampered_record_is_refused(pack_copy: Path, pack: RulePack) -> None:
    meta = pack_copy / "pack.yaml"
    meta.write_text(meta.read_text(encoding="utf-8").replace(pack.sha256, "f" * 64),
                    encoding="utf-8")
    problems = check_versions(RulePack.from_path(pack_copy), pack_copy)
    assert any("the hash recorded for" in p.message for p in problems)
    meta.write_text(meta.read_text(encoding="utf-8").replace("f" * 64, "not-a-hash"),
                    encoding="utf-8")
    code, out = run("rules", "check", str(pack_copy))
    assert code == 2 and "sha256: String should match pattern" in out


def test_the_catalogue_shows_the_version_history(pack: RulePack) -> None:
    text = render_catalogue(pack)
    assert "## Version history" in text
    for record in pack.changes:
        assert f"### {record.version}" in text and record.sha256 in text


def test_a_rule_replaced_by_another_is_compared_with_its_successor(pack_copy: Path) -> None:
    """Removing a rule lowers nothing when a rule at its level or higher takes its place."""
    path = pack_copy / "warning-signs.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    fever = next(r for r in data["rules"] if r["id"] == "fever")
    fever["id"] = "fever-at-38-3"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    current = RulePack.from_path(pack_copy).version
    major, minor = (int(p) for p in current.split(".")[:2])
    set_version(pack_copy, f"{major}.{minor + 1}.0")
    code, out = run("rules", "release", "--record", str(pack_copy))
    assert code == 2 and "fever removed (was urgent)" in out
    code, out = run("rules", "release", "--record", str(pack_copy),
                    "--replaced", "fever=fever-at-38-3")
    assert code == 0, out
    assert run("rules", "check", str(pack_copy))[0] == 0
    record = RulePack.from_path(pack_copy).changes[-1]
    assert record.replaced == {"fever": "fever-at-38-3"}
    assert "fever (urgent) replaced by fever-at-38-3 (urgent)" in render_catalogue(
        RulePack.from_path(pack_copy))
    edit_rule(pack_copy, "fever-at-38-3", level="soon")
    assert run("rules", "release", "--record", str(pack_copy))[0] == 2  # the record keeps it
    code, out = run("rules", "check", str(pack_copy))
    assert code == 2
    assert "fever (urgent) replaced by fever-at-38-3 (soon)" in out
    code, out = run("rules", "release", "--record", str(pack_copy), "--replaced", "nonsense")
    assert code == 2 and "write OLD=NEW" in out
