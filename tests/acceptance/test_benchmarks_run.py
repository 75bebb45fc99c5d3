"""Every benchmark in bench/ still runs, at a toy size, and says what it measured.

The figures in bench/README.md and the README come from these scripts; a script that no
longer starts (a new readiness check, a sandbox that now wants a token) leaves the figures
unrepeatable without anyone noticing. Here each one runs end to end — real processes,
PostgreSQL, the sandbox with its latency model — small enough to take seconds; the sizes
that make the figures are the scripts' defaults. What is checked is that each finished and
printed its results, and the few facts that must hold at any size (every seeded drift found,
no 429, no refused request), not the speeds."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import REPO_ROOT, postgres_admin_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def bench(module: str, *args: str, timeout: float = 240) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUBSYNC_", "HUBSPOT_"))}
    admin = make_url(postgres_admin_url())
    # bench.outbound and those built on it connect with psycopg (a libpq URL); the intake
    # benchmark with SQLAlchemy.
    env["HUBSYNC_TEST_POSTGRES_URL"] = admin.set(drivername="postgresql").render_as_string(
        hide_password=False
    )
    env["HUBSYNC_BENCH_POSTGRES_URL"] = admin.render_as_string(hide_password=False)
    done = subprocess.run(  # noqa: S603 - our own scripts
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"bench.{module} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def figure(output: str, label: str) -> float:
    match = re.search(rf"\| {re.escape(label)} \| ([\d.]+) \|", output)
    assert match, f"no '{label}' row in:\n{output}"
    return float(match.group(1))


def test_outbound(postgres_template: str) -> None:
    out = bench("outbound", "--customers", "300", "--runs", "1", "--skip", "naive,latency")
    assert figure(out, "warp-only companies/s") > 0
    assert figure(out, "two-way companies/s") > 0
    assert "429s served 0" in out
    # The sandbox's own log of each phase: 3 batch updates, then 3 batch reads and 3 updates.
    pacing = re.findall(r"pacing \(the sandbox's log\): (\d+) requests", out)
    assert pacing == ["3", "6"], out


def test_outbound_naive_baseline_and_latency(postgres_template: str) -> None:
    out = bench(
        "outbound",
        "--customers",
        "300",
        "--runs",
        "1",
        "--naive-seconds",
        "2",
        "--latency-seconds",
        "2",
        "--latency-model",
        "none",
    )
    assert figure(out, "naive one-request-per-customer companies/s") > 0
    assert figure(out, "latency queue POST -> HubSpot write, p50 ms") > 0


def test_reconcile(postgres_template: str) -> None:
    out = bench("reconcile", "--customers", "1000", "--runs", "1", "--latency-seconds", "1")
    assert "OK: 10/10 drifts found" in out, out
    assert figure(out, "dry run, s") > 0
    assert figure(out, "live queue -> HubSpot during a 50 % run, p50 ms") > 0


def test_webhook_intake(postgres_template: str) -> None:
    out = bench("webhook_intake", "--runs", "1", "--single", "300", "--batch", "5")
    assert re.search(r"1 event/delivery\s*: median [\d,]+ deliveries/s", out), out
    assert "errors 0" in out


def test_intake_floor(postgres_template: str) -> None:
    """wrk drives both servers with pre-signed deliveries (.ci/run installs wrk): every one
    answered 2xx, none sent twice, each mode's ratio printed."""
    out = bench("intake_floor", "--rounds", "1", "--seconds", "1")
    for mode in ("single", "batch"):
        assert re.search(rf"ratio hubsync/floor \({mode}\): [\d.]+", out), out
    rounds = re.findall(r"round 1 (floor|hubsync)\s*: ([\d,]+) deliveries/s.*non-2xx (\d+)", out)
    assert sorted(name for name, _, _ in rounds) == ["floor", "floor", "hubsync", "hubsync"], out
    assert all(int(rate.replace(",", "")) > 0 and errors == "0" for _, rate, errors in rounds), out
    assert re.search(r"round 1 hubsync.*repeated 0", out), out


def test_inbound_latency(postgres_template: str) -> None:
    out = bench("inbound_latency", "--runs", "1", "--edits", "10", "--rate", "10")
    assert re.search(r"median of 1 runs: edit -> WARP p50 \d+ ms", out), out


def test_console(postgres_template: str) -> None:
    out = bench(
        "console", "--customers", "500", "--log-rows", "5000", "--rounds", "1", "--requests", "2"
    )
    assert re.search(r"dashboard.* \| \d+\.\d \| ", out), out


def test_capture_cost(postgres_template: str) -> None:
    out = bench("capture_cost", "--customers", "500", "--seconds", "1", "--runs", "1")
    assert re.search(r"\| single-row UPDATEs/s \| \d+ \| \d+ \(cost -?[\d.]+%\) \|", out), out


def test_capture_cost_mixed(postgres_template: str) -> None:
    out = bench(
        "capture_cost",
        *("--mixed", "--variants", "none,no-notify,against-notify", "--against", str(REPO_ROOT)),
        *("--customers", "500", "--seconds", "1", "--runs", "1"),
    )
    assert re.search(r"\| trigger, no NOTIFY \| [\d.]+ \| -?[\d.]+% \(", out), out
    assert re.search(r"\| --against's trigger \+ NOTIFY \| [\d.]+ \| -?[\d.]+% \(", out), out


def test_capture_latency(postgres_template: str) -> None:
    out = bench(
        "capture_latency",
        *("--customers", "20", "--runs", "1", "--rate", "5", "--seconds", "2"),
        *("--latency-model", "none"),
    )
    assert "10/10 in HubSpot" in out, out
    assert "jobs by source {'capture': 10}" in out, out  # no job posted, no catch-up
    assert re.search(r"median of 1 runs: UPDATE -> HubSpot p50 \d+ ms", out), out


def test_preview(postgres_template: str) -> None:
    out = bench("preview", "--customers", "500", "--rounds", "1")
    assert "{'company_name': (0, 0, 50)}" in out, out
    assert "{'leaving': 100, 'entering': 0}" in out, out
    assert "HubSpot requests during the previews: 0" in out, out


def test_round_trip(postgres_template: str) -> None:
    out = bench("round_trip", "--count", "50", "--runs", "2")
    costs = re.search(r"median of 2: hubsync (\d+) µs, PostgreSQL (\d+) µs a round trip", out)
    assert costs, out
    assert int(costs.group(1)) > 0, out


def test_event_close(postgres_template: str) -> None:
    out = bench("event_close", "--queued", "0,1000", "--entities", "200", "--history", "3")
    assert out.count("the right events closed") == 2, out
    assert re.search(r"\| 1,000 \| [\d.]+ ms \(\d+ pages\) \|", out), out


def test_catchup_read(postgres_template: str) -> None:
    out = bench("catchup_read", "--customers", "3000", "--changed", "1200", "--runs", "1")
    # One read of the changed rows, however many pages of 500 they fill.
    assert re.search(r"run 1 this tree: 1,200 rows in [\d.]+ s, 1 statements", out), out
    assert re.search(r"\| this tree \| [\d.]+ \| [\d.]+ \| 1 \|", out), out


def test_backlog_drain(postgres_template: str) -> None:
    out = bench("backlog_drain", "--customers", "300", "--events", "2")
    assert "run 1: 600 events delivered and queued" in out, out
    assert re.search(r"run 1: drained [\d,]+ jobs and 600 events in [\d.]+ s", out), out


def test_instructions_are_counted_the_same_in_every_run(postgres_template: str) -> None:
    """The point of counting rather than timing: two runs of one tree agree (within 1 %)."""
    out = bench("instructions", "--mode", "two-way", "--batches", "1", "--runs", "2")
    counts = [float(m) for m in re.findall(r"run \d: ([\d.]+) M instructions a batch", out)]
    assert len(counts) == 2, out
    assert counts[0] > 10, out  # a batch of 100 is well over ten million instructions
    assert abs(counts[0] - counts[1]) < 0.01 * counts[0], out
    assert re.search(r"median of 2: [\d.]+ M instructions a two-way batch of 100", out), out


def test_outbound_latency_reports_the_median_of_its_runs(postgres_template: str) -> None:
    """`--only-latency` prints each run's p50 and p99 and their medians (until 2026-12-07 the
    table gave the last run's under "median")."""
    out = bench(
        "outbound",
        *("--customers", "60", "--runs", "2", "--only-latency", "--latency-seconds", "2"),
        *("--latency-model", "none"),
    )
    for name in ("p50", "p99"):
        match = re.search(
            rf"\| latency queue POST -> HubSpot write, {name} ms \| (\d+) \| (\d+), (\d+) \(",
            out,
        )
        assert match, out
        median, first, second = (int(v) for v in match.groups())
        assert abs(median - (first + second) / 2) <= 1, match.group(0)


def test_outbound_at_its_limit_gets_no_429(postgres_template: str) -> None:
    """`hubsync serve` against the sandbox with the latency model, at a limit small enough to
    fill (20 requests / 2 s: 140 requests in ~15 s): the window is used to the last place and
    never past it. The limiter's margin is 0.5 % of the window (app/hubspot/ratelimit.py),
    since a request is counted from its answer, after HubSpot counted it."""
    out = bench(
        "outbound",
        *("--customers", "2000", "--runs", "1", "--skip", "naive,latency"),
        *("--rate-limit", "20/2s"),
    )
    assert "max requests in any 2 s window 20, 429s served 0" in out, out
