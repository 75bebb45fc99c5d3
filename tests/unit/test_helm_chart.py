"""The Helm chart, through real Helm: lint, render for several value sets, every object valid
for Kubernetes 1.31, the security and operational policies the chart promises, and a schema
that refuses wrong values at install time."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from app.cli import build_parser
from app.settings import SECRET_ENVIRONMENT, Settings
from tests.chart_support import CHART, HOOK, ROOT, notes, of_kind, pod_specs, render

KUBERNETES = "1.31.0"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
SECRET_NAMES = SECRET_ENVIRONMENT
SECRET_VALUES = {
    "databaseUrl": "postgresql://hubsync:db-password-123@db.internal:5432/hubsync",
    "hubspotAccessToken": "pat-na1-not-a-real-token",
    "hubspotClientSecret": "client-secret-not-real",
    "apiTokens": "api-token-one,api-token-two",
    "adminPassword": "admin-password-not-real",
    "secretKey": "session-key-not-real",
}
COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "separate-workers": {"worker": {"enabled": True, "replicas": 3, "processes": 2}},
    "existing-secret": {"secrets": {"existingSecret": "hubsync-from-vault"}},
    "ingress-servicemonitor-hpa": {
        "ingress": {"enabled": True, "className": "nginx", "tlsSecretName": "sync-tls"},
        "metrics": {"serviceMonitor": {"enabled": True}, "grafanaDashboard": {"enabled": True}},
        "autoscaling": {"enabled": True},
        "worker": {"enabled": True},
    },
    "chart-secrets": {"secrets": SECRET_VALUES},
    "migrations-without-hook": {"migrations": {"hook": False}},
    "metrics-port": {"metrics": {"port": 9100, "serviceMonitor": {"enabled": True}}},
    "alerts": {"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}}},
    "extra-env": {
        "extraEnv": [
            {
                "name": "WARP_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "warp-db", "key": "url"}},
            }
        ],
        "migrations": {"hook": False},
    },
}


def test_helm_lint_is_clean() -> None:
    for values in COMBINATIONS.values():
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBERNETES}")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems, problems
        assert not report["errors"], report["errors"]


@pytest.mark.parametrize("name", COMBINATIONS)
def test_every_object_is_valid_for_kubernetes_1_31(name: str) -> None:
    objects = render(COMBINATIONS[name])
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            _check_monitoring(obj)  # CRDs: no schema in Kubernetes' own set
            continue
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


@pytest.mark.parametrize("name", COMBINATIONS)
def test_pods_run_locked_down_with_resources(name: str) -> None:
    objects = render(COMBINATIONS[name])
    specs = pod_specs(objects)
    assert specs
    for owner, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, owner
        assert isinstance(pod["runAsUser"], int), owner
        assert pod["runAsUser"] > 0, owner
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", owner
        assert spec["automountServiceAccountToken"] is False, owner
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, owner
            assert security["allowPrivilegeEscalation"] is False, owner
            assert security["capabilities"]["drop"] == ["ALL"], owner
            assert security["runAsNonRoot"] is True, owner
            resources = container["resources"]
            assert resources["requests"]["cpu"], owner
            assert resources["requests"]["memory"], owner
            assert resources["limits"]["memory"], owner
            assert not container["image"].endswith(":latest"), owner
            assert container["image"].endswith(f":{APP_VERSION}"), owner  # the chart's appVersion
            # What the container runs is a real `hubsync` command line.
            build_parser().parse_args(container["args"])


@pytest.mark.parametrize("name", COMBINATIONS)
def test_deployments_are_probed_spread_and_stop_gracefully(name: str) -> None:
    objects = render(COMBINATIONS[name])
    for deployment in of_kind(objects, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        # The worker finishes its batch for up to 10 s after SIGTERM, after the pre-stop pause.
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert spec["terminationGracePeriodSeconds"] >= pause + 10 + 10
        keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        budgets = [
            pdb
            for pdb in of_kind(objects, "PodDisruptionBudget")
            if pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component
        ]
        assert len(budgets) == 1, component
    assert of_kind(objects, "NetworkPolicy")
    assert of_kind(objects, "Service")


def test_no_secret_is_in_a_config_map() -> None:
    for values in COMBINATIONS.values():
        objects = render(values)
        for config_map in of_kind(objects, "ConfigMap"):
            data = config_map.get("data") or {}
            assert not SECRET_NAMES & set(data), config_map["metadata"]["name"]
            text = json.dumps(data)
            for secret in SECRET_VALUES.values():
                assert secret not in text
    objects = render(COMBINATIONS["chart-secrets"])
    (secret,) = [s for s in of_kind(objects, "Secret") if not _is_hook(s)]
    assert set(secret["data"]) == {
        "HUBSYNC_DATABASE_URL",
        "HUBSPOT_ACCESS_TOKEN",
        "HUBSPOT_CLIENT_SECRET",
        "HUBSYNC_API_TOKENS",
        "HUBSYNC_ADMIN_PASSWORD",
        "HUBSYNC_SECRET_KEY",
    }
    for _, spec in pod_specs(objects):
        for container in spec["containers"]:
            plain = json.dumps(container.get("env", []))
            assert not any(value in plain for value in SECRET_VALUES.values())


def test_report_destinations_reach_the_pods_from_the_secret_only() -> None:
    webhook = "https://hooks.example.com/services/T0/B0/not-a-real-secret"
    smtp = "smtp://reports:mail-password-not-real@smtp.example.com:587"
    objects = render(
        {
            "secrets": {"reportWebhookUrl": webhook, "reportSmtpUrl": smtp},
            "config": {
                "HUBSYNC_REPORT_EMAIL_FROM": "hubsync@example.com",
                "HUBSYNC_REPORT_EMAIL_TO": "ops@example.com, oncall@example.com",
            },
        }
    )
    (secret,) = [s for s in of_kind(objects, "Secret") if not _is_hook(s)]
    stored = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert stored["HUBSYNC_REPORT_WEBHOOK_URL"] == webhook
    assert stored["HUBSYNC_REPORT_SMTP_URL"] == smtp
    config: dict[str, str] = {}
    for config_map in of_kind(objects, "ConfigMap"):
        text = json.dumps(config_map.get("data") or {})
        assert "not-a-real-secret" not in text
        assert "mail-password-not-real" not in text
        config |= config_map.get("data") or {}
    settings = Settings.from_mapping({**config, **stored})
    assert settings.report_smtp is not None
    assert settings.report_smtp.host == "smtp.example.com"
    assert settings.report_email_to == ("ops@example.com", "oncall@example.com")
    assert "not-a-real-secret" not in repr(settings)
    assert "mail-password-not-real" not in repr(settings)


def test_an_existing_secret_replaces_the_charts() -> None:
    objects = render(COMBINATIONS["existing-secret"])
    assert not of_kind(objects, "Secret")
    for _, spec in pod_specs(objects):
        refs = [
            ref["secretRef"]["name"]
            for ref in spec["containers"][0]["envFrom"]
            if "secretRef" in ref
        ]
        assert refs == ["hubsync-from-vault"]


def test_migrations_run_as_a_hook_before_the_deployments() -> None:
    objects = render()
    (job,) = of_kind(objects, "Job")
    hooks = set(job["metadata"]["annotations"][HOOK].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}  # Helm applies the Deployments after these
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    for deployment in of_kind(objects, "Deployment"):
        assert HOOK not in (deployment["metadata"].get("annotations") or {})
    # The Job's database URL exists before it: a hook Secret of lower weight.
    (hook_secret,) = [s for s in of_kind(objects, "Secret") if _is_hook(s)]
    weight = int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    envs = job["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert envs == [{"secretRef": {"name": hook_secret["metadata"]["name"]}}]
    # It holds what the release's Secret holds: `hubsync migrate` reads the whole configuration.
    with_secrets = render(COMBINATIONS["chart-secrets"])
    (hook_secret,) = [s for s in of_kind(with_secrets, "Secret") if _is_hook(s)]
    (release_secret,) = [s for s in of_kind(with_secrets, "Secret") if not _is_hook(s)]
    assert hook_secret["data"] == release_secret["data"]


def test_the_migration_hook_can_be_switched_off() -> None:
    objects = render(COMBINATIONS["migrations-without-hook"])
    (job,) = of_kind(objects, "Job")
    assert HOOK not in (job["metadata"].get("annotations") or {})
    assert job["metadata"]["name"].endswith(
        "-migrate-1"
    )  # one per revision: templates are immutable
    assert not of_kind(render({"migrations": {"enabled": False}}), "Job")


def test_roles_switch_with_separate_workers() -> None:
    def roles(values: dict[str, Any]) -> dict[str, dict[str, str]]:
        found = {}
        for deployment in of_kind(render(values), "Deployment"):
            env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            found[deployment["metadata"]["name"]] = {e["name"]: e["value"] for e in env}
        return found

    together = roles({})
    assert together == {"hubsync-web": {"HUBSYNC_WORKER": "true", "HUBSYNC_SCHEDULER": "true"}}
    apart = roles(COMBINATIONS["separate-workers"])
    assert apart["hubsync-web"] == {"HUBSYNC_WORKER": "false", "HUBSYNC_SCHEDULER": "false"}
    assert apart["hubsync-worker"] == {"HUBSYNC_WORKER": "true", "HUBSYNC_SCHEDULER": "true"}
    workers = list(of_kind(render(COMBINATIONS["separate-workers"]), "Deployment"))
    assert {d["metadata"]["name"]: d["spec"]["replicas"] for d in workers} == {
        "hubsync-web": 2,
        "hubsync-worker": 3,
    }


def test_ingress_exposes_only_webhooks_and_admin() -> None:
    objects = render(COMBINATIONS["ingress-servicemonitor-hpa"])
    (ingress,) = of_kind(objects, "Ingress")
    paths = [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]]
    assert paths == ["/v1/webhooks/hubspot", "/admin"]
    (monitor,) = of_kind(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    autoscalers = of_kind(objects, "HorizontalPodAutoscaler")
    assert {a["spec"]["scaleTargetRef"]["name"] for a in autoscalers} == {
        "hubsync-web",
        "hubsync-worker",
    }
    for deployment in of_kind(objects, "Deployment"):
        assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    (dashboard,) = [c for c in of_kind(objects, "ConfigMap") if "hubsync.json" in c["data"]]
    assert json.loads(dashboard["data"]["hubsync.json"])["panels"]


def test_the_dashboard_queries_metrics_the_service_exports() -> None:
    exported = {
        "hubsync_jobs_finished_total",
        "hubsync_queue_to_hubspot_seconds_bucket",
        "hubsync_event_to_warp_seconds_bucket",
        "hubsync_webhook_deliveries_total",
        "hubsync_webhook_events_total",
        "hubsync_hubspot_requests_total",
        "hubsync_hubspot_request_seconds_bucket",
        "hubsync_hubspot_rate_limited_total",
        "hubsync_queue_jobs",
        "hubsync_queue_oldest_waiting_seconds",
        "hubsync_conflicts_open",
        "hubsync_webhook_events_failed",
        "hubsync_rate_limit_requests",
        "hubsync_rate_limit_used",
        "hubsync_rate_limit_headroom",
        "hubsync_database_up",
        "hubsync_reconciliation_last_success_timestamp_seconds",
        "hubsync_reconciliation_last_success_items",
    }
    dashboard = json.loads((CHART / "dashboards" / "hubsync.json").read_text())
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            queried |= {name for name in exported if name in target["expr"]}
    assert queried == exported


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"image": {"tag": "latest"}}, "/image/tag"),
        ({"web": {"replicas": "two"}}, "/web/replicas"),
        ({"config": {"HUBSPOT_ACCESS_TOKEN": "pat-in-a-configmap"}}, "HUBSPOT_ACCESS_TOKEN"),
        ({"config": {"HUBSPOT_RATE_LIMIT": "fast"}}, "/config/HUBSPOT_RATE_LIMIT"),
        ({"securityContext": {"readOnlyRootFilesystem": False}}, "/securityContext"),
        ({"terminationGracePeriodSeconds": 5}, "/terminationGracePeriodSeconds"),
        ({"replicaCount": 3}, "replicaCount"),
        ({"metrics": {"port": 8000}}, "/metrics/port"),
        ({"config": {"HUBSYNC_WORKER": "false"}}, "HUBSYNC_WORKER"),
        ({"config": {"HUBSYNC_REPORT_WEBHOOK_URL": "https://hooks.example/x"}}, "WEBHOOK_URL"),
        ({"config": {"HUBSYNC_REPORT_SMTP_URL": "smtp://u:p@mail:587"}}, "SMTP_URL"),
        ({"config": {"HUBSYNC_REPORT_EMAIL_TO": "ops"}}, "/config/HUBSYNC_REPORT_EMAIL_TO"),
        ({"config": {"HUBSYNC_REPORT_SMTP_STARTTLS": "maybe"}}, "REPORT_SMTP_STARTTLS"),
        ({"secrets": {"reportSmtpUrl": "http://mail:587"}}, "/secrets/reportSmtpUrl"),
    ],
)
def test_a_wrong_value_fails_at_install(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=where):
        render(values)


def test_every_value_is_documented_and_typed() -> None:
    with helm.Chart.load(CHART) as chart:
        schema = chart.schema
        defaults = chart.values
    assert schema is not None
    documented = _documented_paths((CHART / "values.yaml").read_text().splitlines())
    for path in _leaf_paths(defaults, schema):
        # Its own comment, or its group's (e.g. `requests:` under a documented `resources:`).
        assert path in documented or path[:-1] in documented, path
        assert _schema_node(schema, path) is not None, path


def test_notes_warn_without_a_database() -> None:
    assert "WARNING: no database configured" in notes()
    assert "WARNING" not in notes(COMBINATIONS["chart-secrets"])
    assert "/v1/webhooks/hubspot" in notes(COMBINATIONS["ingress-servicemonitor-hpa"])


def _is_hook(obj: dict[str, Any]) -> bool:
    return HOOK in (obj["metadata"].get("annotations") or {})


def _check_monitoring(obj: dict[str, Any]) -> None:
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    if obj["kind"] == "PrometheusRule":  # its rules are checked by promtool (test_alert_rules)
        assert obj["spec"]["groups"][0]["rules"]
        return
    assert obj["kind"] == "ServiceMonitor"
    assert obj["spec"]["selector"]["matchLabels"]
    for endpoint in obj["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}


def _leaf_paths(
    values: dict[str, Any], schema: dict[str, Any], prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Paths of the values, not descending into free-form maps (labels, config) nor into
    Kubernetes' own objects (documented as a whole)."""
    paths: list[tuple[str, ...]] = []
    for key, value in values.items():
        path = (*prefix, key)
        node = _schema_node(schema, path) or {}
        whole = key in ("config", "resources", "securityContext", "podSecurityContext")
        if isinstance(value, dict) and value and "properties" in node and not whole:
            paths += _leaf_paths(value, schema, path)
        else:
            paths.append(path)
    return paths


def _documented_paths(lines: list[str]) -> set[tuple[str, ...]]:
    """Paths in values.yaml whose key line has a comment line right above it."""
    documented: set[tuple[str, ...]] = set()
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, stripped.split(":", 1)[0]))
        if number and lines[number - 1].strip().startswith("#"):
            documented.add(tuple(key for _, key in stack))
    return documented


def _schema_node(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: dict[str, Any] = schema
    for key in path:
        properties = node.get("properties", {})
        if key not in properties:
            return None
        node = properties[key]
    return node


def test_metrics_on_their_own_port() -> None:
    objects = render(COMBINATIONS["metrics-port"])
    (config,) = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"] == "hubsync"]
    assert config["data"]["HUBSYNC_METRICS_PORT"] == "9100"
    (service,) = of_kind(objects, "Service")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 80, "metrics": 9100}
    (monitor,) = of_kind(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    (deployment,) = of_kind(objects, "Deployment")
    ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in ports
    (policy,) = of_kind(objects, "NetworkPolicy")
    assert {"port": "metrics", "protocol": "TCP"} in policy["spec"]["ingress"][0]["ports"]


def test_the_chart_covers_every_setting_hubsync_reads() -> None:
    """A setting added to app/settings.py is a value of the chart too (or named here)."""
    source = (ROOT / "app" / "settings.py").read_text()
    read = set(re.findall(r"""\bget\(\s*["']([A-Z][A-Z0-9_]+)["']\s*\)""", source))
    assert {"HUBSYNC_DATABASE_URL", "HUBSPOT_RATE_LIMIT"} <= read  # the pattern still matches
    with helm.Chart.load(CHART) as chart:
        config = set(chart.values["config"])
    by_the_chart = {"HUBSYNC_WORKER", "HUBSYNC_SCHEDULER", "HUBSYNC_METRICS_PORT"}
    by_the_image = {"HUBSYNC_MIGRATIONS_DIR"}
    missing = read - config - SECRET_NAMES - by_the_chart - by_the_image
    assert not missing, f"add to helm/hubsync/values.yaml `config` (and the schema): {missing}"


@pytest.mark.parametrize("hook", [True, False])
def test_extra_env_reaches_every_container(hook: bool) -> None:
    values = {**COMBINATIONS["extra-env"], "migrations": {"hook": hook}}
    for owner, spec in pod_specs(render(values)):
        names = [e["name"] for e in spec["containers"][0].get("env", [])]
        assert "WARP_DATABASE_URL" in names, owner


def test_behind_the_ingress_the_forwarded_client_address_is_trusted() -> None:
    def trusted(values: dict[str, Any]) -> str | None:
        objects = render(values)
        (config,) = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"] == "hubsync"]
        value: str | None = config["data"].get("HUBSYNC_TRUSTED_PROXIES")
        return value

    with_ingress = COMBINATIONS["ingress-servicemonitor-hpa"]
    assert trusted(with_ingress) == "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
    assert trusted({}) is None  # no Ingress: hubsync's own default (127.0.0.1)
    narrowed = {
        **with_ingress,
        "ingress": {**with_ingress["ingress"], "trustedProxies": "10.2.0.0/16"},
    }
    assert trusted(narrowed) == "10.2.0.0/16"
    chosen = {**with_ingress, "config": {"HUBSYNC_TRUSTED_PROXIES": "192.0.2.7"}}
    assert trusted(chosen) == "192.0.2.7"
    Settings.from_mapping({"HUBSYNC_TRUSTED_PROXIES": trusted(with_ingress) or ""})
