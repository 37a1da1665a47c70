"""Pack versions: the recorded hash and levels of each version, and the check on them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from marrow_triage import RulePack, TriageEngine
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
    assert code == 1
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
    assert run("rules", "release", "--record", str(pack_copy))[0] == 1  # recorded, still wrong
    code, out = run("rules", "check", str(pack_copy))
    assert code == 1
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
    assert code == 1 and "fever removed (was urgent)" in out
    code, out = run("rules", "release", "--record", str(pack_copy),
                    "--replaced", "fever=fever-at-38-3")
    assert code == 0, out
    assert run("rules", "check", str(pack_copy))[0] == 0
    record = RulePack.from_path(pack_copy).changes[-1]
    assert record.replaced == {"fever": "fever-at-38-3"}
    assert "fever (urgent) replaced by fever-at-38-3 (urgent)" in render_catalogue(
        RulePack.from_path(pack_copy))
    edit_rule(pack_copy, "fever-at-38-3", level="soon")
    assert run("rules", "release", "--record", str(pack_copy))[0] == 1  # the record keeps it
    code, out = run("rules", "check", str(pack_copy))
    assert code == 1
    assert "fever (urgent) replaced by fever-at-38-3 (soon)" in out
    code, out = run("rules", "release", "--record", str(pack_copy), "--replaced", "nonsense")
    assert code == 2 and "write OLD=NEW" in out


def test_a_pack_without_a_record_fails_the_check_but_still_loads(pack_copy: Path) -> None:
    meta = pack_copy / "pack.yaml"
    meta.write_text(meta.read_text(encoding="utf-8").split("# Version history")[0],
                    encoding="utf-8")
    assert RulePack.from_path(pack_copy).changes == ()
    code, out = run("rules", "check", str(pack_copy))
    assert code == 1
    [line] = out.strip().splitlines()
    assert line.startswith("rules/pack.yaml: changes: no version history")
    assert f"`{RECORD} {pack_copy}`" in line
    # A release check, not a load error: the pack still triages.
    engine = TriageEngine.from_path(pack_copy)
    assert engine.triage({"hours_since_procedure": 30, "chills": True}).findings
    assert run("rules", "release", "--record", str(pack_copy))[0] == 0
    assert run("rules", "check", str(pack_copy))[0] == 0


# --- overlays ---------------------------------------------------------------------------

OVERLAY = Path(__file__).resolve().parents[1] / "examples" / "overlays" / "uk-site"


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """A writable copy of the worked overlay example (it extends the packaged pack)."""
    target = tmp_path / "uk-site"
    shutil.copytree(OVERLAY, target)
    return target


def add_overlay_change(site: Path, change: dict[str, object]) -> None:
    path = site / "rules.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.setdefault("changes", []).append(change)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def test_the_worked_overlay_example_is_recorded_with_its_own_hash() -> None:
    overlay = RulePack.from_path(OVERLAY)
    assert check_versions(overlay, OVERLAY) == []
    record = next(r for r in overlay.changes if r.version == overlay.version)
    own = overlay.chain[-1]
    assert (own.name, own.version) == (overlay.name, overlay.version)
    assert record.sha256 == own.sha256 != overlay.sha256  # its files, not the merged pack
    assert overlay.changes != RulePack.default().changes  # not the base's history
    code, out = run("rules", "check", str(OVERLAY))
    assert code == 0 and f"sha256 {overlay.sha256} (merged; its own files {own.sha256}, " \
        "recorded)" in out


def test_an_overlay_changed_without_a_new_version_fails_the_check(site: Path) -> None:
    add_overlay_change(site, {"id": "site-redness", "title": "Redness at the needle site"})
    code, out = run("rules", "check", str(site))
    assert code == 1
    assert "uk-site/pack.yaml: changes: the rules changed but the version did not" in out
    assert f"`{RECORD} {site}`" in out
    assert run("rules", "release", "--record", str(site))[0] == 0
    assert run("rules", "check", str(site))[0] == 0


def test_an_overlay_that_lowers_a_level_needs_a_major_version(site: Path) -> None:
    add_overlay_change(site, {"id": "site-redness", "level": "self_care",
                              "acknowledge_downgrade": "Our wound clinic reviews redness at "
                                                       "the next routine visit."})
    set_version(site, "1.1.0")
    assert run("rules", "release", "--record", str(site))[0] == 1  # recorded, still wrong
    code, out = run("rules", "check", str(site))
    assert code == 1
    assert "site-redness: soon → self_care" in out and "must be a new major version" in out
    assert "`version: 2.0.0`" in out
    set_version(site, "2.0.0")
    assert run("rules", "release", "--record", str(site))[0] == 0
    assert run("rules", "check", str(site))[0] == 0
    assert [r.version for r in RulePack.from_path(site).changes] == ["1.0.0", "1.1.0", "2.0.0"]


def test_an_overlay_without_a_record_fails_the_check(site: Path) -> None:
    meta = site / "pack.yaml"
    meta.write_text(meta.read_text(encoding="utf-8").split("# Version history")[0],
                    encoding="utf-8")
    code, out = run("rules", "check", str(site))
    assert code == 1
    assert out.strip().startswith("uk-site/pack.yaml: changes: no version history")


def test_a_change_of_the_base_alone_keeps_the_overlay_record(site: Path,
                                                             pack_copy: Path) -> None:
    edit_rule(pack_copy, "chills", title="Chills or shivering (edited)")
    assert run("rules", "release", "--record", str(pack_copy))[0] == 0
    code, out = run("rules", "check", str(site), "--base", str(pack_copy))
    assert code == 0, out
    add_overlay_change(site, {"id": "site-redness", "title": "Redness at the needle site"})
    code, out = run("rules", "check", str(site), "--base", str(pack_copy))
    assert code == 1 and f"`{RECORD} {site} --base {pack_copy}`" in out
    assert run("rules", "release", "--record", str(site), "--base", str(pack_copy))[0] == 0
    assert run("rules", "check", str(site), "--base", str(pack_copy))[0] == 0
