"""The README's commands work as written, and every file they name exists.

```sh blocks are run, in order, in a scratch copy of examples/ and rules/ with the venv's
bin on PATH (as after `make demo` and the README's `export PATH=...`); ```shell blocks are
installs and make targets, checked but not run here (`make test` is what runs this).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")
BIN = Path(sys.executable).parent


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, re.S | re.M)


def test_every_file_a_readme_command_names_exists() -> None:
    named = {m for lang in ("sh", "shell", "python")
             for block in blocks(lang) for m in re.findall(r"examples/[\w./-]+\w", block)}
    assert "examples/fever-101F.json" in named
    missing = sorted(name for name in named if not (ROOT / name).exists())
    assert not missing, f"README commands name files that do not exist: {missing}"


def test_make_targets_in_the_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text("utf-8")
    targets = {m for block in blocks("shell") for m in re.findall(r"^make ([\w-]+)", block, re.M)}
    targets |= set(re.findall(r"`make ([\w-]+)`", README))
    assert {"demo", "test", "test-pythons"} <= targets
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no make target {target}"


def test_the_readme_python_example_runs() -> None:
    [block] = blocks("python")
    result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                            timeout=120, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("urgent\n")


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's service block uses curl")
def test_the_readme_shell_commands_run_as_written(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = "\n".join(blocks("sh")).replace("8000", str(port))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MARROW_TRIAGE_API_TOKEN", None)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.startswith("marrow-triage ")  # --version
    assert "URGENT" in out  # the readable result
    assert '"level": "self_care"' in out  # check --json of the soreness example
    assert "OK: marrow-aftercare" in out  # rules check
    assert (tmp_path / "rules-catalogue.md").read_text("utf-8").startswith("#")
    assert "exit status 2: see the error lines" in out  # the NDJSON batch
    results = (tmp_path / "results.ndjson").read_text("utf-8").splitlines()
    calls = (tmp_path / "examples" / "nurse-line-calls.ndjson").read_text("utf-8")
    assert len(results) == len(calls.splitlines())
    assert results[3].startswith('{"line": 4, "error": "invalid report"')
    assert '"level":"urgent"' in out  # curl /v1/triage
    assert "Episode ep-1: 1 check-in(s)" in out  # timeline show
    assert "Episode ep-1: erased 1 check-in(s)" in out  # timeline forget
    assert "Erased 0 episode(s) whose latest check-in was before" in out  # expire
