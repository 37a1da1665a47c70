"""The copy-paste examples of the integration docs run as written."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent


def fenced(doc: str, lang: str) -> list[str]:
    text = (DOCS / doc).read_text("utf-8")
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("MARROW_TRIAGE_API_TOKEN", "MARROW_TRIAGE_CDS_CLIENTS",
                 "MARROW_TRIAGE_PUBLIC_URL"):
        env.pop(name, None)
    return env


def _workdir(tmp_path: Path) -> Path:
    """A scratch copy of what the examples read, so they write nothing into the checkout."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    return tmp_path


def test_python_integration_example_runs(tmp_path: Path) -> None:
    [block] = fenced("integration-python.md", "python")
    result = subprocess.run([sys.executable, "-c", block], cwd=_workdir(tmp_path),
                            env=_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("urgent - Call your care team's 24-hour number now")
    assert "invalid: ['temperature.unit', 'site_pain']" in result.stdout


def test_nurse_line_cli_example_runs(tmp_path: Path) -> None:
    cli_block = fenced("integration-nurse-line.md", "sh")[0]
    work = _workdir(tmp_path)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", cli_block], cwd=work,
                            env=_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "URGENT" in result.stdout
    assert "urgent\nrejected with status 2" in result.stdout
    assert "site_pain: Input should be less than or equal to 10" in result.stderr
    assert (work / "report.schema.json").read_text().startswith("{")
    # check --ndjson: one line out per line in, the bad line's error in place, exit 2.
    assert "some lines failed: status 2\n4\n" in result.stdout
    assert '{"line": 4, "error": "invalid report", "problems"' in result.stdout
    assert "could not be triaged (line 4)" in result.stderr


def test_nurse_line_http_example_runs(tmp_path: Path) -> None:
    http_block = fenced("integration-nurse-line.md", "sh")[1]
    assert "PORT=8000\n" in http_block
    assert shutil.which("curl"), "the nurse-line HTTP example needs curl"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = http_block.replace("PORT=8000\n", f"PORT={port}\n", 1)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script],
                            cwd=_workdir(tmp_path), env=_env(), capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"level":"urgent"' in out  # /v1/triage
    assert '[{"level":"emergency"' in out  # /v1/triage/batch
    assert "\n422\n" in out  # the invalid report
    assert '"name":"marrow-aftercare"' in out  # /v1/rules
    # The access log shows requests, never report content.
    assert '"POST /v1/triage HTTP/1.1" 200' in out
    assert "site_pain" not in result.stderr


def test_cds_hooks_doc_shows_the_example_verbatim_and_it_runs() -> None:
    example = (ROOT / "examples" / "cds_hooks_client.py").read_text("utf-8")
    assert example in fenced("cds-hooks.md", "python")
    result = subprocess.run([sys.executable, "examples/cds_hooks_client.py"], cwd=ROOT,
                            env=_env(), capture_output=True, text=True, check=False,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "critical - Urgent: Fever" in result.stdout
    assert "replayed token: 401" in result.stdout
