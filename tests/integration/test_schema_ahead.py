"""Expand, then contract: a release keeps serving (and stays ready) on a schema a newer release
has already migrated, when that schema declares it still serves this code; it is not ready on
a schema that does not. The newer release is simulated by a scratch copy of the migrations
with one throwaway revision ahead of head (a nullable column on the queue)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.main import create_app
from app.store import migrate
from tests.conftest import REPO_ROOT, Database
from tests.integration.test_job_api import add_customers
from tests.integration.test_portal_binding import TOKEN, demo_settings
from tests.support import running

AHEAD = "9999"


def scratch_migrations(tmp_path: Path, *, serves_this_code: bool) -> Path:
    scripts = tmp_path / "migrations"
    shutil.copytree(REPO_ROOT / "migrations", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrate.head_revision()
    serves = head if serves_this_code else AHEAD
    (scripts / "versions" / f"{AHEAD}_throwaway.py").write_text(
        f'''"""A newer release's expansion: one nullable column."""
from alembic import op
import sqlalchemy as sa

from app.store.migrate import declare_compatible, forget_compatible

revision = "{AHEAD}"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hubspot_sync_queue") as batch_op:
        batch_op.add_column(sa.Column("newer_release_note", sa.Text(), nullable=True))
    declare_compatible(revision, "{serves}")


def downgrade() -> None:
    forget_compatible(revision)
    with op.batch_alter_table("hubspot_sync_queue") as batch_op:
        batch_op.drop_column("newer_release_note")
'''
    )
    return scripts


async def migrate_ahead(db: Database, scripts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setenv("HUBSYNC_MIGRATIONS_DIR", str(scripts))
        await migrate.upgrade(db.engine)
        assert await migrate.current_revision(db.engine) == AHEAD


async def test_this_code_stays_ready_and_syncs_on_a_newer_compatible_schema(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate_ahead(db, scratch_migrations(tmp_path, serves_this_code=True), monkeypatch)
    [customer] = await add_customers(db, 1)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running(create_app(demo_settings(db))) as client:
        ready = await client.get("/readyz")
        synced = await client.post(f"/v1/sync/customers/{customer}/to-hubspot", headers=auth)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["migrations"].startswith(f"ok: at {AHEAD}, ahead of")
    assert synced.status_code == 200, synced.text
    assert synced.json()["hubspot_company_id"]


async def test_this_code_is_not_ready_on_a_newer_schema_that_does_not_serve_it(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate_ahead(db, scratch_migrations(tmp_path, serves_this_code=False), monkeypatch)
    async with running(create_app(demo_settings(db))) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["migrations"] == (
        f"at {AHEAD}, newer than this code's {migrate.head_revision()}, and it serves code "
        f"from {AHEAD} on: run the newer release, or downgrade with it"
    )


async def test_a_schema_behind_the_code_is_not_ready(db: Database) -> None:
    await migrate.downgrade(db.engine, "0007")
    async with running(create_app(demo_settings(db))) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["migrations"] == (
        f"at 0007, head is {migrate.head_revision()}; run `hubsync migrate`"
    )
