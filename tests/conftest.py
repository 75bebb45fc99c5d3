"""Test databases: every database test runs on SQLite (the embedded default) and PostgreSQL.

PostgreSQL: one database is migrated per test session as a template; each test gets its own
copy (`CREATE DATABASE … TEMPLATE …`, fast) with WARP's `accounts.customers` table, dropped
after the test. Set HUBSYNC_TEST_POSTGRES_URL to point elsewhere. Under CI=true a PostgreSQL
test that would be skipped fails the run instead: the suite must really have run there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.db import create_engine
from app.store.migrate import upgrade
from app.warp.schema import customers_table

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://root@127.0.0.1:5432/postgres"
IN_CI = os.environ.get("CI", "").lower() == "true"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Database:
    """A migrated, empty hubsync database with WARP's customers table beside it."""

    kind: str  # "sqlite" or "postgresql"
    url: str
    engine: AsyncEngine
    customers_table: str

    @property
    def env(self) -> dict[str, str]:
        """The environment a hubsync process needs to use this database."""
        return {
            # The built-in sandbox, on a database of its own (a test's HubSpot is the sandbox).
            "HUBSYNC_MODE": "demo",
            "HUBSYNC_DATABASE_URL": self.url,
            "WARP_CUSTOMERS_TABLE": self.customers_table,
        }


def postgres_admin_url() -> str:
    return os.environ.get("HUBSYNC_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _libpq(url: str, database: str | None = None) -> str:
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _admin(sql: str) -> None:
    with psycopg.connect(_libpq(postgres_admin_url()), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The name of a migrated template database, or a skip (a failure in CI)."""
    try:
        _admin("SELECT 1")
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL not reachable at {make_url(postgres_admin_url()).host}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"hubsync_tmpl_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:

        async def prepare() -> None:
            url = make_url(postgres_admin_url()).set(database=name)
            engine = create_engine(url.render_as_string(hide_password=False))
            try:
                await upgrade(engine)
                async with engine.begin() as connection:
                    await connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS accounts")
                    await connection.run_sync(customers_table("accounts.customers").create)
            finally:
                await engine.dispose()

        # In a thread of its own: this may be reached from inside the running test loop.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, prepare()).result()
        yield name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database copied from the migrated template, for one test."""
    name = f"hubsync_t_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    try:
        yield (
            make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hubsync.db'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated per test session (per xdist worker), with WARP's customers
    table: each test copies it rather than migrating from scratch."""
    path = tmp_path_factory.mktemp("sqlite-template") / "hubsync.db"

    async def prepare() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(engine)
            async with engine.begin() as connection:
                await connection.run_sync(customers_table("customers").create)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, prepare()).result()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database on each backend, with an empty WARP customers table."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        engine = create_engine(url, pool_size=5)
        database = Database("postgresql", url, engine, "accounts.customers")
    else:
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, tmp_path / "hubsync.db")
        url = request.getfixturevalue("sqlite_url")
        engine = create_engine(url)
        database = Database("sqlite", url, engine, "customers")
    try:
        yield database
    finally:
        await engine.dispose()


# -- CI: a skipped PostgreSQL test is a failure ----------------------------------------------

_skipped_postgres: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # An expected failure (xfail) reports as skipped too; it did run against PostgreSQL.
    if report.skipped and "postgres" in report.keywords and not hasattr(report, "wasxfail"):
        _skipped_postgres.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if IN_CI and _skipped_postgres:
        print(
            f"\nCI=true: {len(_skipped_postgres)} PostgreSQL test(s) were skipped, e.g. "
            f"{_skipped_postgres[0]}; the suite must run against PostgreSQL."
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
