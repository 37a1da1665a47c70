"""The ``marrow-triage`` command line, through typer's runner and as the installed script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marrow_triage import SymptomReport, TriageEngine, TriageResult, errors, triage
from marrow_triage.adapters.cli.main import app
from marrow_triage.errors import MAX_LISTED_PROBLEMS
from marrow_triage.pack import RulePack, default_rules_path
from marrow_triage.pack.catalogue import render_catalogue

ROOT = Path(__file__).resolve().parents[1]
FEVER = ROOT / "examples" / "fever-101F.json"
SCRIPT = Path(sys.executable).with_name("marrow-triage")
SERVE_TOKEN = "serve-test-api-token-0123456789abcdef"

runner = CliRunner()


def invoke(*args: str, stdin: bytes | str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_check_prints_a_readable_result() -> None:
    code, out, err = invoke("check", str(FEVER))
    assert code == 0, err
    expected = triage(json.loads(FEVER.read_text()))
    assert "URGENT" in out
    assert expected.action in out.replace("\n", " ")
    flat = " ".join(out.split())
    for finding in expected.findings:
        assert " ".join(finding.explanation.split()) in flat
        assert finding.source.quote in flat
        assert finding.source.title in flat
    for item in (*expected.advice, *expected.reassurance):
        assert " ".join(item.split()) in flat
    for question in expected.questions:
        assert question.text in flat
    assert "does not replace, clinical judgement" in flat


def test_check_json_is_only_the_result() -> None:
    code, out, _ = invoke("check", str(FEVER), "--json")
    assert code == 0
    result = TriageResult.model_validate_json(out)
    assert result == triage(json.loads(FEVER.read_text()))


def test_check_reads_stdin() -> None:
    code, out, _ = invoke("check", "-", "--json",
                          stdin='{"hours_since_procedure": 20, "chest_pain": true}')
    assert code == 0
    assert json.loads(out)["level"] == "emergency"


@pytest.mark.parametrize(
    ("stdin", "lines"),
    [
        ('{"hours_since_procedure": "20", "temperature": {"value": 38.5, "unit": "K"}}',
         ["hours_since_procedure: Input should be a valid number",
          "temperature.unit: Input should be 'C' or 'F'"]),
        ('{"hours_since_procedure": 20, "temperature": {"value": 120, "unit": "C"}}',
         ["temperature: Value error, not a plausible body temperature "
          "(expected 30 to 45 °C)"]),
        ('{"hours_since_procedure": 20, "chils": true}',
         ["chils: Extra inputs are not permitted (did you mean 'chills'?)"]),
        ("{", ["input: Invalid JSON: EOF while parsing an object at line 1 column 1"]),
        ("", ["input: Invalid JSON: EOF while parsing a value at line 1 column 0"]),
        (b"\xff\xfe{}", ["input: not UTF-8 text (byte 0: invalid start byte)"]),
        ("[]", ["input: Input should be an object"]),
    ],
)
def test_invalid_input_exits_2_with_a_line_per_field(stdin: str | bytes,
                                                     lines: list[str]) -> None:
    code, out, err = invoke("check", "-", "--json", stdin=stdin)
    assert code == 2
    assert out == ""
    assert err.splitlines() == lines
    assert "Traceback" not in err


def test_many_unknown_keys_give_few_lines_and_few_suggestions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13: 50,000 unknown keys cost 3.5 s of "did you mean" suggestions."""
    calls = 0
    real_suggest = errors.suggest

    def counting_suggest(name: str, known: tuple[str, ...]) -> str:
        nonlocal calls
        calls += 1
        return real_suggest(name, known)

    monkeypatch.setattr(errors, "suggest", counting_suggest)
    report = {"hours_since_procedure": 20, "chils": True,
              **{f"key{i:05d}": True for i in range(50_000)}}
    code, out, err = invoke("check", "-", "--json", stdin=json.dumps(report))
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "chils: Extra inputs are not permitted (did you mean 'chills'?)"
    assert lines[1] == "key00000: Extra inputs are not permitted"
    assert len(lines) == MAX_LISTED_PROBLEMS + 1
    assert lines[-1] == f"... and {50_001 - MAX_LISTED_PROBLEMS} more problem(s)"
    assert calls <= MAX_LISTED_PROBLEMS


def test_missing_file_exits_2() -> None:
    code, _, err = invoke("check", "no-such-report.json")
    assert code == 2
    assert err.startswith("no-such-report.json: cannot read")


def _copy_pack(tmp_path: Path) -> Path:
    pack = tmp_path / "pack"
    shutil.copytree(default_rules_path(), pack)
    return pack


def test_rules_option_uses_another_pack(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)
    meta = pack / "pack.yaml"
    meta.write_text(meta.read_text().replace("version: 1.1.0", "version: 9.9.9"))
    code, out, _ = invoke("check", str(FEVER), "--json", "--rules", str(pack))
    assert code == 0
    assert json.loads(out)["ruleset"]["version"] == "9.9.9"


def _break_pack(pack: Path) -> None:
    for file in pack.glob("*.yaml"):
        text = file.read_text()
        if "temperature_c" in text and file.name != "pack.yaml":
            file.write_text(text.replace("temperature_c", "temprature_c", 1))
            return
    raise AssertionError("no rule file tests temperature_c")


def test_bad_rule_pack_exits_2_with_the_problems(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)
    _break_pack(pack)
    code, out, err = invoke("check", str(FEVER), "--rules", str(pack))
    assert code == 2
    assert out == ""
    assert "temprature_c" in err and "Traceback" not in err
    code, out, err = invoke("rules", "check", str(pack))
    assert code == 2
    assert "temprature_c" in err
    assert "did you mean" in err.lower() or "temperature_c" in err


def test_rules_check_ok_line() -> None:
    code, out, _ = invoke("rules", "check", str(default_rules_path()))
    pack = RulePack.default()
    assert code == 0
    assert out.startswith(f"OK: {pack.name} {pack.version}, {len(pack.rules)} rules")
    assert pack.sha256 in out
    assert out.splitlines()[1:] == ["locale es: every text translated"]


def test_rules_check_missing_directory() -> None:
    code, _, err = invoke("rules", "check", "/no/such/pack")
    assert code == 2
    assert "is not a directory" in err


def test_rules_docs_writes_the_catalogue(tmp_path: Path) -> None:
    target = tmp_path / "docs" / "rules.md"
    code, _, _ = invoke("rules", "docs", "--output", str(target))
    assert code == 0
    assert target.read_text() == render_catalogue(RulePack.default())
    code, out, _ = invoke("rules", "docs", "--output", "-")
    assert out == render_catalogue(RulePack.default())


def test_rules_docs_with_a_bad_pack_leaves_the_old_file(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)
    _break_pack(pack)
    target = tmp_path / "rules.md"
    target.write_text("old\n")
    code, _, _ = invoke("rules", "docs", "--output", str(target), "--rules", str(pack))
    assert code == 2
    assert target.read_text() == "old\n"


@pytest.mark.parametrize(("name", "model"), [("report", SymptomReport),
                                             ("result", TriageResult)])
def test_schema(name: str, model: type[SymptomReport] | type[TriageResult]) -> None:
    code, out, _ = invoke("schema", name)
    assert code == 0
    assert json.loads(out) == model.model_json_schema()
    assert invoke("schema", "nonsense")[0] == 2


@pytest.mark.parametrize(
    "args",
    [[], ["check"], ["rules"], ["rules", "check"], ["rules", "docs"], ["schema"], ["serve"]],
)
def test_every_command_has_help_with_an_example(args: list[str]) -> None:
    code, out, _ = invoke(*args, "--help")
    assert code == 0
    assert "Example: marrow-triage" in " ".join(out.split())


def test_installed_script_pipes_stdin_and_sets_exit_codes() -> None:
    assert SCRIPT.exists(), SCRIPT
    report = {"hours_since_procedure": 30, "temperature": {"value": 101.3, "unit": "F"}}
    ok = subprocess.run([str(SCRIPT), "check", "-", "--json"], input=json.dumps(report),
                        capture_output=True, text=True, check=False, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert TriageResult.model_validate_json(ok.stdout) == TriageEngine.default().triage(report)
    bad = subprocess.run([str(SCRIPT), "check", "-"], input=b'{"hours_since_procedure": -1}',
                         capture_output=True, check=False, cwd=ROOT)
    assert bad.returncode == 2
    assert bad.stdout == b""
    assert bad.stderr.decode().splitlines() == [
        "hours_since_procedure: Input should be greater than or equal to 0"]
    readable = subprocess.run([str(SCRIPT), "check", str(FEVER)], capture_output=True,
                              text=True, check=False, cwd=ROOT)
    assert readable.returncode == 0
    assert "URGENT" in readable.stdout
    assert "\x1b[" not in readable.stdout  # no colour codes when piped


def test_serve_runs_the_http_service(tmp_path: Path) -> None:
    import contextlib
    import os
    import socket

    import httpx

    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MARROW_TRIAGE_API_TOKEN": SERVE_TOKEN}
    env.pop("MARROW_TRIAGE_CDS_CLIENTS", None)
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(SCRIPT), "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):  # wait for the server to accept connections
            if proc.poll() is not None:
                break
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.05)
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        report = json.loads(FEVER.read_text())
        ok = httpx.post(url + "/v1/triage", json=report,
                        headers={"Authorization": f"Bearer {SERVE_TOKEN}"})
        assert ok.status_code == 200
        assert ok.json()["level"] == "urgent"
        assert httpx.post(url + "/v1/triage", json=report).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert "Uvicorn running on http://127.0.0.1" in (tmp_path / "serve.log").read_text()


NO_SERVICE_ENV: dict[str, str | None] = dict.fromkeys(
    ("MARROW_TRIAGE_API_TOKEN", "MARROW_TRIAGE_CDS_CLIENTS", "MARROW_TRIAGE_PUBLIC_URL"))


@pytest.mark.parametrize(("token", "message"), [
    (None, "the API token is not configured: set MARROW_TRIAGE_API_TOKEN"),
    ("", "the API token is not configured: set MARROW_TRIAGE_API_TOKEN"),
    ("short-token", "the API token must be at least 32 characters (this one has 11)"),
])
def test_serve_without_a_usable_token_exits_2(token: str | None, message: str) -> None:
    """Issue 13: serve started with no token (every /v1 call 503) or a guessable one."""
    result = runner.invoke(app, ["serve", "--port", "0"],
                           env={**NO_SERVICE_ENV, "MARROW_TRIAGE_API_TOKEN": token})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"configuration: {message}")


def test_serve_with_cds_clients_and_no_public_url_exits_2(tmp_path: Path) -> None:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    key = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps({"https://ehr.example.org": {"keys": [key]}}))
    result = runner.invoke(app, ["serve", "--port", "0"], env={
        **NO_SERVICE_ENV, "MARROW_TRIAGE_API_TOKEN": SERVE_TOKEN,
        "MARROW_TRIAGE_CDS_CLIENTS": str(clients)})
    assert result.exit_code == 2
    assert "no public URL: set MARROW_TRIAGE_PUBLIC_URL" in result.stderr


def test_serve_with_a_bad_cds_clients_file_exits_2(tmp_path: Path) -> None:
    clients = tmp_path / "clients.json"
    clients.write_text('{"https://ehr.example.org": {"keys": [{"kty": "RSA"}]}}')
    result = runner.invoke(app, ["serve", "--port", "0"],
                           env={"MARROW_TRIAGE_CDS_CLIENTS": str(clients)})
    assert result.exit_code == 2
    assert result.stderr.startswith("configuration: MARROW_TRIAGE_CDS_CLIENTS=")
    assert "unusable key" in result.stderr


def test_rules_docs_default_output_is_docs_rules_md(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("rules", "docs")
    assert code == 0, err
    assert (tmp_path / "docs" / "rules.md").read_text() == render_catalogue(RulePack.default())
    assert not list((tmp_path / "docs").glob(".*.tmp"))  # no temporary file left behind
