"""One version per release, and notes for it: the package version (pyproject.toml), the chart's
`version` and `appVersion` (the image tag its pods run), the image's default build argument and
the API document agree, and CHANGELOG.md has an entry for that version with an "Upgrading"
section (what an operator must do, and how to roll back)."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = ("pyproject.toml", "helm/hubsync/Chart.yaml", "Dockerfile", "openapi.yaml", "CHANGELOG.md")
# A release's heading in Keep a Changelog form: "## [0.2.0] - 2026-12-06".
RELEASE_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\] - \d{4}-\d{2}-\d{2}$", re.MULTILINE)


def release_problems(root: Path) -> list[str]:
    """What disagrees with the package version, in the repository at `root`."""
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((root / "helm/hubsync/Chart.yaml").read_text())
    problems = [
        f"helm/hubsync/Chart.yaml {key} is {chart[key]!r}, the package is {version}"
        for key in ("appVersion", "version")
        if str(chart[key]) != version
    ]
    image = re.search(r"^ARG VERSION=(\S+)$", (root / "Dockerfile").read_text(), re.MULTILINE)
    if image is None or image.group(1) != version:
        problems.append(f"Dockerfile's ARG VERSION is not {version}")
    api = yaml.safe_load((root / "openapi.yaml").read_text())["info"]["version"]
    if str(api) != version:
        problems.append(f"openapi.yaml info.version is {api!r}, the package is {version}")
    problems += changelog_problems((root / "CHANGELOG.md").read_text(), version)
    return problems


def changelog_problems(changelog: str, version: str) -> list[str]:
    releases = list(RELEASE_HEADING.finditer(changelog))
    entry = next((r for r in releases if r.group("version") == version), None)
    if entry is None:
        return [f"CHANGELOG.md has no '## [{version}] - YYYY-MM-DD' entry"]
    problems = []
    if releases[0] is not entry:
        problems.append(f"CHANGELOG.md's newest release is {releases[0].group('version')}")
    following = next((r.start() for r in releases if r.start() > entry.start()), len(changelog))
    body = changelog[entry.end() : following]
    if "\n### Upgrading\n" not in body:
        problems.append(f"CHANGELOG.md's {version} entry has no '### Upgrading' section")
    elif "roll" not in body.lower():
        problems.append(f"CHANGELOG.md's {version} entry does not say how to roll back")
    return problems


def test_the_versions_agree_and_the_changelog_describes_this_one() -> None:
    assert release_problems(ROOT) == []


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def bump_package(root: Path) -> str:
    """Raise pyproject's version by one patch level, as a release bump would; the new version."""
    path = root / "pyproject.toml"
    old = tomllib.loads(path.read_text())["project"]["version"]
    major, minor, patch = (int(part) for part in old.split("."))
    new = f"{major}.{minor}.{patch + 1}"
    path.write_text(path.read_text().replace(f'version = "{old}"', f'version = "{new}"', 1))
    return new


def test_a_package_bumped_alone_is_caught(copy: Path) -> None:
    new = bump_package(copy)
    problems = release_problems(copy)
    assert any("appVersion" in p and new in p for p in problems), problems
    assert any("Dockerfile" in p for p in problems), problems
    assert f"CHANGELOG.md has no '## [{new}] - YYYY-MM-DD' entry" in problems


def test_a_chart_app_version_apart_from_the_package_is_caught(copy: Path) -> None:
    path = copy / "helm/hubsync/Chart.yaml"
    chart = re.sub(r"^appVersion: .*$", 'appVersion: "9.9.9"', path.read_text(), flags=re.M)
    path.write_text(chart)
    assert release_problems(copy) == [
        f"helm/hubsync/Chart.yaml appVersion is '9.9.9', the package is "
        f"{tomllib.loads((copy / 'pyproject.toml').read_text())['project']['version']}"
    ]


def test_an_entry_without_upgrade_notes_is_caught(copy: Path) -> None:
    path = copy / "CHANGELOG.md"
    path.write_text(path.read_text().replace("### Upgrading", "### Notes"))
    version = tomllib.loads((copy / "pyproject.toml").read_text())["project"]["version"]
    assert release_problems(copy) == [
        f"CHANGELOG.md's {version} entry has no '### Upgrading' section"
    ]
