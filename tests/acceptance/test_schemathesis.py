"""schemathesis against a running `hubsync serve`, from openapi.yaml: examples, coverage and
fuzzing, with valid and invalid data; no 5xx, every status, header, content type and body as
documented, invalid data refused. Bounded (10 examples per operation, a fixed seed).

Webhook deliveries cannot be signed by the fuzzer: those two operations only show that an
unsigned request is a 401 as documented; signed ones are tested elsewhere.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.acceptance.test_embedded_default import free_port
from tests.acceptance.test_production_safety import ROOT, clean_env, serve, stop, wait_until_up

pytestmark = pytest.mark.slow
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,negative_data_rejection"
)
SCHEMATHESIS = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "schemathesis"


def test_the_running_service_keeps_its_openapi_contract(tmp_path: Path) -> None:
    fuzz_a_running_service(tmp_path, {})


def test_the_contract_holds_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """PostgreSQL refuses what SQLite takes (a NUL byte in text, a non-UUID compared with a
    UUID): hostile query strings once reached it and were 500s."""
    fuzz_a_running_service(
        tmp_path,
        {
            "HUBSYNC_DATABASE_URL": postgres_url,
            "WARP_CUSTOMERS_TABLE": "accounts.customers",
            "HUBSYNC_DEMO_DATA": "false",
        },
    )


def fuzz_a_running_service(tmp_path: Path, extra: dict[str, str]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(
        HUBSYNC_MODE="demo",
        HUBSYNC_API_TOKENS="fuzz-token",
        HUBSPOT_CLIENT_SECRET="fuzz-secret",
        HUBSYNC_LOG_LEVEL="ERROR",
        **extra,
    )
    server = serve(env, port, cwd=tmp_path)
    try:
        wait_until_up(f"{base}/readyz", server)
        fuzz = subprocess.run(  # noqa: S603 -- fixed argv
            [
                str(SCHEMATHESIS),
                "run",
                str(ROOT / "openapi.yaml"),
                *("--url", base),
                *("-H", "Authorization: Bearer fuzz-token"),
                *("--checks", CHECKS),
                *("--mode", "all"),
                *("--phases", "examples,coverage,fuzzing"),
                *("--max-examples", "10"),
                *("--seed", "14"),
                *("--generation-database", "none"),
                *("--workers", "1"),
                "--no-color",
            ],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        server_log = stop(server)
    assert fuzz.returncode == 0, fuzz.stdout[-6000:] + fuzz.stderr[-2000:]
    assert "Traceback" not in server_log, server_log[-3000:]
