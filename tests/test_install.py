"""How users arrive (issue 11): a plain pip install gives a working command line, missing
extras are named in one line, durable-rules that does not load says how to fix it, and
the version, licence and ignored files match what the project declares."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

import marrow_triage
from marrow_triage.adapters.cli.main import app
from marrow_triage.adapters.service.app import create_app
from marrow_triage.engine.durable import REBUILD_DURABLE_RULES

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
FEVER = ROOT / "examples" / "fever-101F.json"


def _python(code: str, *, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False, cwd=cwd, env=env)


# -- versions ---------------------------------------------------------------------------


def test_version_is_one_value_everywhere() -> None:
    assert marrow_triage.__version__ == metadata.version("marrow-triage")
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"marrow-triage {marrow_triage.__version__}\n"


def test_openapi_version_is_the_library_version_and_the_pack_version_stays_in_rules(
        engine: marrow_triage.TriageEngine) -> None:
    application = create_app(engine, token="t" * 32)
    assert application.openapi()["info"]["version"] == marrow_triage.__version__
    assert engine.pack.version != marrow_triage.__version__  # they are different things


def test_tested_pythons_are_declared() -> None:
    project = PYPROJECT["project"]
    assert project["requires-python"] == ">=3.11"
    declared = {c.rsplit(" ", 1)[-1] for c in project["classifiers"]
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert declared == {"3.11", "3.12", "3.13"}
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in declared


def test_license_file_matches_pyproject() -> None:
    assert PYPROJECT["project"]["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text("utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "License :: OSI Approved :: Apache Software License" in (
        PYPROJECT["project"]["classifiers"])


def test_gitignore_covers_the_databases_the_docs_create() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {m for doc in docs
             for m in re.findall(r"--db\s+([\w./-]+\.(?:db|sqlite3?))\b", doc.read_text("utf-8"))}
    named |= {"marrow-timeline.db"}  # the CLI's default
    assert named, "the docs name no database any more: update this test"
    for name in named:
        for suffix in ("", "-wal", "-shm"):
            ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", name + suffix],
                                     cwd=ROOT, check=False)
            assert ignored.returncode == 0, f"{name}{suffix} is not in .gitignore"


def test_changelog_lists_this_version_or_unreleased_changes() -> None:
    text = (ROOT / "CHANGELOG.md").read_text("utf-8")
    assert "## Unreleased" in text or f"## {marrow_triage.__version__}" in text


# -- durable-rules that does not load ---------------------------------------------------


def test_durable_rules_that_does_not_load_is_one_sentence_saying_what_to_do(
        tmp_path: Path) -> None:
    # What Python 3.13 does with a durable-rules built without the flag, simulated: the
    # C extension raises the loader's ImportError.
    (tmp_path / "durable_rules_engine.py").write_text(
        "raise ImportError('/venv/lib/durable_rules_engine.cpython-313-x86_64-linux-gnu.so: "
        "undefined symbol: PyEval_CallObject')\n", "utf-8")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = _python("import marrow_triage", env=env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("marrow_triage.errors.InstallError: marrow_triage cannot load "
                           "durable-rules' C engine")
    assert REBUILD_DURABLE_RULES in last
    assert last.endswith(".") and last.count(". ") == 0  # one sentence
    assert "undefined symbol" not in result.stderr
    probe = _python("import marrow_triage\n", env={**env, "PYTHONPATH": ""})
    assert probe.returncode == 0, probe.stderr


def test_the_rebuild_command_is_the_one_the_readme_and_the_makefile_use() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    assert REBUILD_DURABLE_RULES.replace(" --force-reinstall", "") in readme
    script = (ROOT / "scripts" / "install-durable-rules").read_text("utf-8")
    assert "-DPyEval_CallObject=PyObject_CallObject" in script
    assert "--no-cache-dir" in script
    assert "scripts/install-durable-rules" in (ROOT / "Makefile").read_text("utf-8")


# -- extras that are not installed ------------------------------------------------------

BLOCK_EXTRAS = """
import sys
BLOCKED = {"fastapi", "starlette", "uvicorn", "jwt", "fhir", "httpx"}
class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.mark.parametrize(("module", "extra"), [
    ("marrow_triage.adapters.service", "service"),
    ("marrow_triage.adapters.cds_hooks.hooks", "service"),
    ("marrow_triage.adapters.fhir", "fhir"),
])
def test_modules_without_their_extra_name_it_in_one_line(module: str, extra: str) -> None:
    result = _python(BLOCK_EXTRAS + f"""
try:
    import {module}
except ImportError as exc:
    print(type(exc).__name__, "|", exc)
""")
    assert result.returncode == 0, result.stderr
    kind, _, message = result.stdout.strip().partition(" | ")
    assert kind == "InstallError"
    assert "\n" not in message
    assert f"pip install 'marrow-triage[{extra}]'" in message


def test_the_command_line_works_without_extras_and_serve_names_the_missing_one(
        tmp_path: Path) -> None:
    run = BLOCK_EXTRAS + """
from marrow_triage.adapters.cli import main
sys.argv = ["marrow-triage", *sys.argv[1:]]
main()
"""
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", run, *args], capture_output=True,
                              text=True, timeout=120, check=False, cwd=tmp_path)

    checked = cli("check", "--json", str(FEVER))
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["level"] == "urgent"
    assert cli("rules", "check", str(ROOT / "rules")).returncode == 0
    recorded = cli("timeline", "record", "--db", "t.db", "--episode", "e",
                   "--at", "2026-11-25T08:00:00+00:00", str(FEVER))
    assert recorded.returncode == 0, recorded.stderr
    assert cli("timeline", "show", "--db", "t.db", "--episode", "e").returncode == 0
    served = cli("serve", "--port", "0")
    assert served.returncode == 2
    assert served.stdout == ""
    assert served.stderr.count("\n") == 1, served.stderr  # one line, no traceback
    assert "pip install 'marrow-triage[service]'" in served.stderr


@pytest.mark.slow
def test_a_plain_pip_install_in_a_fresh_venv_gives_a_working_command(tmp_path: Path) -> None:
    """The real thing: a new venv, the README's durable-rules step, then the package with
    no extras; `marrow-triage check` works and `serve` names the extra."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    steps = [
        [str(ROOT / "scripts" / "install-durable-rules"), str(python)],
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    script = venv / "bin" / "marrow-triage"
    check = subprocess.run([str(script), "check", "--json", str(FEVER)], capture_output=True,
                           text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["level"] == "urgent"
    serve = subprocess.run([str(script), "serve"], capture_output=True, text=True,
                           timeout=120, check=False)
    assert (serve.returncode, serve.stderr.count("\n")) == (2, 1), serve.stderr
    assert "marrow-triage[service]" in serve.stderr
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True,
                            text=True, check=True).stdout.lower()
    assert "fastapi" not in freeze and "fhir" not in freeze


def _requirement_closure(extra: str) -> set[str]:
    """Normalised names of every distribution that ``marrow-triage[extra]`` installs."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    provided: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [("marrow-triage", frozenset({extra}))]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        provided.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        environments = [{"extra": e} for e in extras] or [{"extra": ""}]
        for text in requirements:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate(env) for env in environments):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return provided


def test_the_examples_extra_provides_everything_the_cds_hooks_example_imports() -> None:
    import ast

    from packaging.utils import canonicalize_name

    source = (ROOT / "examples" / "cds_hooks_client.py").read_text("utf-8")
    assert "pip install 'marrow-triage[examples]'" in source
    modules = {alias.name.split(".")[0] for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom) and node.module}
    third_party = modules - set(sys.stdlib_module_names) - {"marrow_triage"}
    assert {"httpx", "jwt", "uvicorn"} <= third_party
    provided = _requirement_closure("examples")
    by_module = metadata.packages_distributions()
    for module in sorted(third_party):
        dists = {canonicalize_name(d) for d in by_module.get(module, [])}
        assert dists & provided, f"{module} is imported by the example but not in [examples]"
