"""The layers are checked by a tool (import-linter's contracts in pyproject.toml, run by
`make lint`), and the tool really catches a breach: production code importing the sandbox."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(  # noqa: S603 - our own venv's lint-imports on a copy of our code
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_code(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO_ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_code_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_of_the_code(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_hubspot_client_importing_the_sandbox_breaks_a_contract(tmp_path: Path) -> None:
    root = copy_of_the_code(tmp_path)
    with (root / "app" / "hubspot" / "connection.py").open("a") as module:
        module.write("\nfrom app.sandbox.app import SandboxConfig  # noqa: E402, F401\n")
    result = lint_imports(root)
    assert result.returncode != 0
    assert "app.hubspot is not allowed to import app.sandbox" in result.stdout


def test_the_core_importing_sqlalchemy_breaks_a_contract(tmp_path: Path) -> None:
    root = copy_of_the_code(tmp_path)
    with (root / "app" / "sync" / "core" / "decision.py").open("a") as module:
        module.write("\nimport sqlalchemy  # noqa: E402, F401\n")
    result = lint_imports(root)
    assert result.returncode != 0
    assert "app.sync.core is not allowed to import sqlalchemy" in result.stdout
