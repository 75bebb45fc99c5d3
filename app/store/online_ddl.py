"""Schema changes that leave writers writing, for migrations on tables that may be big.

On PostgreSQL a plain `CREATE INDEX` blocks every write to its table for as long as the build
takes, and one `UPDATE` of every row holds those rows' locks (and a single huge transaction)
until it ends. So here, on PostgreSQL:

* indexes are built and dropped `CONCURRENTLY`, which PostgreSQL only allows outside a
  transaction: Alembic's autocommit block commits what the migration did so far and runs them
  on their own. A build that fails half way leaves an invalid index behind, so each build
  first drops any leftover of the same name: running the migration again repairs it.
* a backfill runs in batches of `BATCH_ROWS` rows, each committed on its own, from one
  PL/pgSQL block (the same statement in `hubsync migrate --sql`'s output and online).

SQLite has one writer at a time whatever we do, and the embedded database is small: it keeps
the plain statements.

Every statement still runs under the migration's `lock_timeout` (migrations/env.py), so a
migration that cannot get its lock fails within it instead of queueing writers behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alembic import op

BATCH_ROWS = 5000


def on_postgresql() -> bool:
    return bool(op.get_context().dialect.name == "postgresql")


def create_index(
    name: str, table: str, columns: Sequence[str], *, unique: bool = False, **dialect_kw: Any
) -> None:
    """Build an index on an existing table without blocking its writers."""
    if not on_postgresql():
        op.create_index(name, table, list(columns), unique=unique, **dialect_kw)
        return
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
        op.create_index(
            name, table, list(columns), unique=unique, postgresql_concurrently=True, **dialect_kw
        )


def drop_index(name: str, table: str) -> None:
    """Drop an index of an existing table without blocking its writers."""
    if not on_postgresql():
        op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)


def backfill(table: str, keys: Sequence[str], assignment: str, *, where: str = "TRUE") -> None:
    """`UPDATE table SET assignment WHERE where`, in batches of `BATCH_ROWS` rows walked in
    primary-key order (`keys`, text columns), each batch its own transaction on PostgreSQL.

    `assignment` and `where` are SQL fragments written in the migration (never user input);
    they may name the row being updated as `t`."""
    if not on_postgresql():
        op.execute(f"UPDATE {table} AS t SET {assignment} WHERE {where}")
        return
    key_list = ", ".join(keys)
    last = ", ".join(f"last_{key}" for key in keys)
    prefixed = ", ".join(f"t.{key}" for key in keys)
    assign_last = " ".join(f"last_{key} := upper_{key};" for key in keys)
    upper = ", ".join(f"upper_{key}" for key in keys)
    declared = "\n".join(f"    last_{key} text := '';\n    upper_{key} text;" for key in keys)
    # Each batch is a range of the primary key, found first, so the UPDATE walks the index.
    block = f"""DO $backfill$
DECLARE
{declared}
BEGIN
    LOOP
        SELECT {key_list} INTO {upper} FROM {table}
        WHERE ({key_list}) > ({last})
        ORDER BY {key_list} OFFSET {BATCH_ROWS - 1} LIMIT 1;
        IF NOT FOUND THEN
            UPDATE {table} AS t SET {assignment}
            WHERE ({prefixed}) > ({last}) AND ({where});
            EXIT;
        END IF;
        UPDATE {table} AS t SET {assignment}
        WHERE ({prefixed}) > ({last}) AND ({prefixed}) <= ({upper}) AND ({where});
        {assign_last}
        COMMIT;
    END LOOP;
END
$backfill$"""
    with op.get_context().autocommit_block():
        op.execute(block)
