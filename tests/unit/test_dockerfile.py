"""The image the chart runs: the Dockerfile's user, port, entrypoint and migrations path are
the chart's (there is no Docker engine here, so the Dockerfile is read, not built)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from app.cli import build_parser
from tests.chart_support import ROOT, of_kind, pod_specs, read_dockerfile, render


def test_the_chart_runs_as_the_images_user() -> None:
    image = read_dockerfile()
    user, _, group = image.user.partition(":")
    assert user.isdigit()
    assert int(user) > 0
    for owner, spec in pod_specs(render({"worker": {"enabled": True}})):
        assert spec["securityContext"]["runAsUser"] == int(user), owner
        assert spec["securityContext"]["runAsGroup"] == int(group), owner
        for container in spec["containers"]:
            assert container["securityContext"]["runAsUser"] == int(user), owner


def test_the_chart_uses_the_images_entrypoint_and_port() -> None:
    image = read_dockerfile()
    assert image.entrypoint == ["hubsync"]
    (port,) = image.expose
    parser = build_parser()
    assert parser.parse_args(image.cmd).port == port
    objects = render({"worker": {"enabled": True}})
    for owner, spec in pod_specs(objects):
        for container in spec["containers"]:
            assert "command" not in container, owner  # the image's entrypoint runs
            args = parser.parse_args(container["args"])
            if args.command == "serve":
                assert args.port == port, owner
                assert container["ports"] == [
                    {"name": "http", "containerPort": port, "protocol": "TCP"}
                ]
    for service in of_kind(objects, "Service"):
        assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_migrations_are_where_the_image_says() -> None:
    image = read_dockerfile()
    configured = image.env["HUBSYNC_MIGRATIONS_DIR"]
    copied = [c.split() for c in image.copies if not c.startswith("--from")]
    targets = {
        str(Path(image.workdir, destination).resolve()): source for source, destination in copied
    }
    assert targets.get(configured) == "migrations"
    assert (ROOT / "migrations" / "env.py").is_file()
    assert any(p.suffix == ".py" for p in (ROOT / "migrations" / "versions").iterdir())
    # The chart's Job runs `hubsync migrate` and leaves the image's path alone.
    objects = render({"migrations": {"hook": False}})
    (job,) = of_kind(objects, "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert build_parser().parse_args(container["args"]).command == "migrate"
    (config,) = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"] == "hubsync"]
    assert "HUBSYNC_MIGRATIONS_DIR" not in config["data"]


def test_the_image_is_labelled_health_checked_and_carries_the_admin_files() -> None:
    image = read_dockerfile()
    for label in ("source", "version", "revision", "title"):
        assert f"org.opencontainers.image.{label}" in image.labels
    assert "/healthz" in image.healthcheck
    assert f":{image.expose[0]}/" in image.healthcheck
    # The admin UI's templates and static files are package data, so the non-editable
    # install of the build stage puts them in the image.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]["app"]
    assert "admin/static/*" in package_data
    assert "admin/templates/*.html" in package_data
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY app ./app" in text
    assert "pip install --no-deps ." in text
