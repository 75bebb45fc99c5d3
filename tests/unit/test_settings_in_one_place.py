"""Every setting is named in one place (`app.settings.ENVIRONMENT`), and each place an operator
looks for it names it too: the README's configuration table, the chart's values.yaml and
values.schema.json, and `hubsync check-config`'s output. Adding a setting and forgetting one of
them fails here."""

from __future__ import annotations

import ast
import json
import re

import pytest
import yaml

from app.cli.database import environment_lines
from app.settings import ENVIRONMENT, SECRET_ENVIRONMENT
from tests.conftest import REPO_ROOT

NAME = re.compile(r"^(HUBSYNC|HUBSPOT|WARP|PROMETHEUS)_[A-Z0-9_]+$")
# Names of that shape that are values, not settings: a rule's direction, a resolution, an
# association category.
NOT_SETTINGS = {"HUBSPOT_TO_WARP", "WARP_TO_HUBSPOT", "WARP_DELETED", "HUBSPOT_DEFINED"}
CHART = REPO_ROOT / "helm" / "hubsync"


def names_read_by_the_code() -> set[str]:
    found: set[str] = set()
    for path in (REPO_ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and NAME.match(node.value)
                and node.value not in NOT_SETTINGS
            ):
                found.add(node.value)
    return found


def readme_table_names(text: str | None = None) -> set[str]:
    text = (REPO_ROOT / "README.md").read_text() if text is None else text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_every_name_the_code_reads_is_declared() -> None:
    assert names_read_by_the_code() == set(ENVIRONMENT)


def test_secrets_are_settings() -> None:
    assert set(ENVIRONMENT) >= SECRET_ENVIRONMENT


@pytest.mark.parametrize("name", ENVIRONMENT)
def test_the_readme_table_names_it(name: str) -> None:
    assert name in readme_table_names()


@pytest.mark.parametrize("name", ENVIRONMENT)
def test_the_charts_values_name_it(name: str) -> None:
    values_text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(values_text)
    # A key under `config`, or documented where the chart sets it from another value
    # (secrets, worker.enabled, metrics.port).
    assert name in values["config"] or name in values_text


@pytest.mark.parametrize("name", ENVIRONMENT)
def test_the_charts_schema_names_it(name: str) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]
    refused_secrets = config["propertyNames"]["not"]["enum"]
    assert name in config["properties"] or name in refused_secrets


@pytest.mark.parametrize("name", ENVIRONMENT)
def test_check_config_names_it(name: str) -> None:
    lines = environment_lines({})
    assert any(line.startswith(f"{name}: ") for line in lines)


def test_check_config_never_prints_a_secret() -> None:
    environ = dict.fromkeys(SECRET_ENVIRONMENT, "s3cr3t-value")
    environ["HUBSYNC_LOG_LEVEL"] = "DEBUG"
    lines = environment_lines(environ)
    assert not any("s3cr3t-value" in line for line in lines)
    assert "HUBSYNC_LOG_LEVEL: DEBUG" in lines
    assert "HUBSPOT_ACCESS_TOKEN: (set, hidden)" in lines


def test_a_setting_missing_from_the_readme_is_caught() -> None:
    """The check can fail: the same reading of a README without one row no longer finds it."""
    text = (REPO_ROOT / "README.md").read_text()
    without = "\n".join(line for line in text.splitlines() if "`HUBSYNC_QUEUE_AGEING`" not in line)
    assert "HUBSYNC_QUEUE_AGEING" in readme_table_names(text)
    assert "HUBSYNC_QUEUE_AGEING" not in readme_table_names(without)
