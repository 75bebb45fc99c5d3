"""The chart's alerts (an optional PrometheusRule) are real PromQL that fires when it should:
`promtool check rules` on what the chart renders, and `promtool test rules` with the fixtures
in tests/alerts/. promtool comes from Debian's `prometheus` package (.ci/run installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart_support import of_kind, render
from tests.conftest import REPO_ROOT

PROMTOOL = shutil.which("promtool")
IN_CI = os.environ.get("CI", "").lower() == "true"

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not IN_CI, reason="promtool not installed (Debian: prometheus)"
)


def rendered_rules(values: dict[str, object] | None = None) -> dict[str, object]:
    rule = {"enabled": True, **(values or {})}
    (obj,) = of_kind(render({"metrics": {"prometheusRule": rule}}), "PrometheusRule")
    return {"groups": obj["spec"]["groups"]}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool is required under CI=true"
    return subprocess.run(  # noqa: S603 - Debian's promtool on files this test wrote
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_no_rule_unless_asked() -> None:
    assert of_kind(render(), "PrometheusRule") == []


def test_every_alert_names_its_runbook_line_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    rules = rendered_rules()["groups"][0]["rules"]  # type: ignore[index]
    assert len(rules) == 7
    for rule in rules:
        assert rule["annotations"]["runbook"] == f"README, Alerts: {rule['alert']}"
        assert f"**{rule['alert']}**" in readme


@needs_promtool
def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rendered_rules()))
    result = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


@needs_promtool
def test_each_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rendered_rules()))
    shutil.copy(REPO_ROOT / "tests" / "alerts" / "hubsync_test.yaml", tmp_path / "test.yaml")
    result = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_a_wrong_threshold_makes_the_fixtures_fail(tmp_path: Path) -> None:
    """The fixtures can fail: with the waiting threshold above what the series reach, the
    expected HubsyncQueueWaiting alert never fires."""
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump(rendered_rules({"oldestWaitingSeconds": 5000}))
    )
    shutil.copy(REPO_ROOT / "tests" / "alerts" / "hubsync_test.yaml", tmp_path / "test.yaml")
    result = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "HubsyncQueueWaiting" in result.stdout + result.stderr
