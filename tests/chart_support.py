"""Rendering the Helm chart with real Helm (the helm-python-sdk wheel bundles Helm v4's
library) and reading the Dockerfile the chart's image is built from."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "hubsync"
DOCKERFILE = ROOT / "Dockerfile"
HOOK = "helm.sh/hook"


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object `helm template` would print (hooks included), in template order."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name="hubsync", namespace="sync", is_install=True)
    objects: list[dict[str, Any]] = []
    for path in sorted(manifests):
        if path.endswith(".txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(manifests[path]) if doc]
    return objects


def notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name="hubsync", namespace="sync", is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) of every Deployment and Job."""
    return [
        (obj["metadata"]["name"], obj["spec"]["template"]["spec"])
        for obj in objects
        if obj["kind"] in ("Deployment", "Job")
    ]


@dataclass
class Dockerfile:
    """The runtime stage of the Dockerfile: the facts the chart depends on."""

    user: str = ""
    workdir: str = ""
    expose: list[int] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    copies: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    healthcheck: str = ""


def read_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    """The last stage's instructions (line continuations joined; exec-form JSON parsed)."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    stage = Dockerfile()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "FROM":
            stage = Dockerfile()
        elif instruction == "USER":
            stage.user = rest
        elif instruction == "WORKDIR":
            stage.workdir = rest
        elif instruction == "EXPOSE":
            stage.expose += [int(port.split("/")[0]) for port in rest.split()]
        elif instruction in ("ENTRYPOINT", "CMD"):
            value = yaml.safe_load(rest)  # exec form is a JSON list
            setattr(stage, instruction.lower(), list(value))
        elif instruction in ("ENV", "LABEL"):
            target = stage.env if instruction == "ENV" else stage.labels
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                target[key] = value
        elif instruction == "COPY":
            stage.copies.append(rest)
        elif instruction == "HEALTHCHECK":
            stage.healthcheck = rest
    return stage
