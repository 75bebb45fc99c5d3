"""Resolving a batch's open conflicts costs about the batch, however many conflicts the
deployment has ever had.

Every batch closes the open conflicts of the customers it settled (`resolve_all_conflicts`, in
the batch's records). Conflicts are kept once resolved, so the table only grows. The statement
named the state as a parameter: in the generic plan PostgreSQL may keep for a hot prepared
statement, the partial index of open conflicts could not serve it, and every batch read every
open conflict, or the whole table (300,000 conflicts, forced generic: 46-85 ms a batch).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.store.db import create_engine
from app.store.sync_state import _RESOLVE_ALL_POSTGRES, resolve_all_conflicts
from tests.integration.plans import explained, rows_touched

BATCH = 100
RESOLVED = 20_000  # conflicts of the past, of other customers
WAITING = 5_000  # open conflicts of other customers, waiting for an operator
FIELDS = 3  # open conflicts per customer of the batch


@pytest.mark.postgres
async def test_resolving_a_batchs_conflicts_reads_about_the_batch(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO hubspot_conflicts (warp_customer_id, field, state, resolution,"
                    " reason) SELECT 'old-' || g, 'company_name', 'resolved', 'warp', :reason"
                    " FROM generate_series(1, :n) g"
                ),
                {"n": RESOLVED, "reason": "both sides changed since the last sync " * 3},
            )
            await conn.execute(
                text(
                    "INSERT INTO hubspot_conflicts (warp_customer_id, field, state, reason)"
                    " SELECT 'waiting-' || g, 'company_name', 'open', :reason"
                    " FROM generate_series(1, :n) g"
                ),
                {"n": WAITING, "reason": "both sides changed since the last sync " * 3},
            )
            await conn.execute(
                text(
                    "INSERT INTO hubspot_conflicts (warp_customer_id, field, state)"
                    " SELECT 'c' || (g % :batch), 'f' || (g / :batch), 'open'"
                    " FROM generate_series(0, :n - 1) g"
                ),
                {"batch": BATCH, "n": BATCH * FIELDS},
            )
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE hubspot_conflicts"))
        ids = [f"c{n}" for n in range(BATCH)]

        # Cheap in the plan the worker's connection keeps for it.
        args = _RESOLVE_ALL_POSTGRES.args(ids=ids, resolution="sync", at=datetime.now(UTC))
        plan = await explained(engine, _RESOLVE_ALL_POSTGRES.sql, args, generic=True)
        assert rows_touched(plan) < 5 * BATCH * FIELDS, json.dumps(plan, indent=1)

        # Right: the batch's open conflicts close, the others stay as they were.
        async with engine.begin() as conn:
            await resolve_all_conflicts(conn, ids, "sync")
        async with engine.connect() as conn:
            states = await conn.execute(
                text("SELECT state, resolution, count(*) FROM hubspot_conflicts GROUP BY 1, 2")
            )
            assert sorted((tuple(row) for row in states), key=str) == [
                ("open", None, WAITING),
                ("resolved", "sync", BATCH * FIELDS),
                ("resolved", "warp", RESOLVED),
            ]
    finally:
        await engine.dispose()
