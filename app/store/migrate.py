"""Run Alembic from inside hubsync: upgrade, downgrade, and "can this code run on the schema?".

Expand, then contract: a migration only adds (tables, nullable columns, indexes built
concurrently) in the release that starts using them, and records the oldest code revision it
still serves (`declare_compatible`, in `hubsync_schema_compat`). Code older than the schema
stays ready when the schema says it serves it; a schema older than the code never does.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import inspect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, op
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import HubsyncError

# How long a migration's statement waits for a lock before the migration fails (PostgreSQL):
# writers that arrive meanwhile queue behind the waiting statement, so this bounds their stall.
LOCK_TIMEOUT = "1s"

# Tables that live in hubsync's database but are not hubsync's (the embedded WARP table).
FOREIGN_TABLES = frozenset({"customers"})


def migrations_dir() -> Path:
    """Where the Alembic scripts are: HUBSYNC_MIGRATIONS_DIR, else beside the package."""
    configured = os.environ.get("HUBSYNC_MIGRATIONS_DIR")
    candidates = [Path(configured)] if configured else []
    candidates += [Path(__file__).resolve().parents[2] / "migrations", Path.cwd() / "migrations"]
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("Alembic migrations not found; set HUBSYNC_MIGRATIONS_DIR")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    return config


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave WARP's own table (and Alembic's bookkeeping) out of drift checks."""
    return not (type_ == "table" and (name in FOREIGN_TABLES or name == "alembic_version"))


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, command.upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    await _run(engine, command.downgrade, revision)


async def _run(engine: AsyncEngine, operation: Any, revision: str) -> None:
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        operation(config, revision)

    # Not in a transaction of ours: env.py runs each revision in its own, and a revision may
    # commit part way (indexes built CONCURRENTLY, backfills a batch at a time).
    async with engine.connect() as connection:
        try:
            await connection.run_sync(run)
            await connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                # It carries the migration's lock_timeout: never back into the pool.
                await connection.invalidate()


# -- expand, then contract ---------------------------------------------------------------------

COMPAT_TABLE = sa.table(
    "hubsync_schema_compat",
    sa.column("revision", sa.String),
    sa.column("serves_code_from", sa.String),
)


def declare_compatible(revision: str, serves_code_from: str) -> None:
    """Inside a migration's upgrade: the schema it leaves still serves code from
    `serves_code_from` on (that revision's release and every later one)."""
    op.execute(COMPAT_TABLE.delete().where(COMPAT_TABLE.c.revision == revision))
    op.bulk_insert(COMPAT_TABLE, [{"revision": revision, "serves_code_from": serves_code_from}])


def forget_compatible(revision: str) -> None:
    """Inside a migration's downgrade: its declaration goes with it."""
    op.execute(COMPAT_TABLE.delete().where(COMPAT_TABLE.c.revision == revision))


@dataclass(frozen=True)
class SchemaState:
    ready: bool
    message: str


def code_revisions() -> list[str]:
    """This code's revisions, head first (read once per migrations folder: /readyz asks on
    every probe, and reading the scripts costs ~12 ms of CPU)."""
    return list(_revisions_in(migrations_dir()))


@functools.cache
def _revisions_in(directory: Path) -> tuple[str, ...]:
    script = ScriptDirectory.from_config(alembic_config())
    return tuple(revision.revision for revision in script.walk_revisions())


async def schema_state(engine: AsyncEngine) -> SchemaState:
    """Whether this code may run on the database's schema: at its head, or ahead of it by
    revisions whose newest declares that it still serves this code."""
    current = await current_revision(engine)
    known = code_revisions()
    head = known[0] if known else None
    if current == head:
        return SchemaState(ready=True, message="ok")
    if current is None or current in known:
        return SchemaState(
            ready=False,
            message=f"at {current or 'nothing'}, head is {head}; run `hubsync migrate`",
        )
    serves_from = await _serves_code_from(engine, current)
    if serves_from is not None and serves_from in known:
        return SchemaState(
            ready=True,
            message=f"ok: at {current}, ahead of this code's {head}; it serves code from "
            f"{serves_from} on",
        )
    why = (
        "it declares no compatibility"
        if serves_from is None
        else f"it serves code from {serves_from} on"
    )
    return SchemaState(
        ready=False,
        message=f"at {current}, newer than this code's {head}, and {why}: run the newer "
        "release, or downgrade with it",
    )


async def _serves_code_from(engine: AsyncEngine, revision: str) -> str | None:
    select = sa.select(COMPAT_TABLE.c.serves_code_from).where(COMPAT_TABLE.c.revision == revision)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(select)).scalar_one_or_none()
    except sa.exc.DBAPIError:  # no such table: a schema from before the discipline
        return None


# -- a migrate that talks ----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    revision: str
    title: str  # the first line of the migration's docstring
    losses: tuple[str, ...]  # what its downgrade drops (tables, columns), read from its code


def _title(doc: str | None, width: int = 90) -> str:
    """The docstring's first sentence, at most `width` characters."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    sentence = paragraph.split(". ")[0].split(": ")[0].rstrip(".")
    return sentence if len(sentence) <= width else sentence[: width - 1].rstrip() + "…"


def _losses(module: object) -> tuple[str, ...]:
    """The tables and columns a migration's downgrade drops, read from its source."""
    downgrade_fn = getattr(module, "downgrade", None)
    if downgrade_fn is None:
        return ()
    tree = ast.parse(inspect.getsource(downgrade_fn).lstrip())
    losses: list[str] = []

    def literal(node: ast.expr) -> str | None:
        return (
            node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
        )

    def visit(node: ast.AST, table: str | None) -> None:
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if (
                    isinstance(call, ast.Call)
                    and getattr(call.func, "attr", "") == "batch_alter_table"
                ):
                    table = literal(call.args[0]) if call.args else table
        if isinstance(node, ast.Call) and node.args:
            name = getattr(node.func, "attr", "")
            first = literal(node.args[0])
            if name == "drop_table" and first:
                losses.append(f"table {first}")
            elif name == "drop_column" and first:
                owner = literal(node.args[0]) if len(node.args) > 1 else table
                column = literal(node.args[1]) if len(node.args) > 1 else first
                losses.append(f"column {owner}.{column}")
        for child in ast.iter_child_nodes(node):
            visit(child, table)

    visit(tree, None)
    return tuple(losses)


def plan(current: str | None, target: str, *, downgrade: bool) -> list[Step]:
    """The revisions an upgrade to (or a downgrade to) `target` runs, in the order it runs them."""
    script = ScriptDirectory.from_config(alembic_config())
    if downgrade:
        if current is None:
            return []
        upper, lower = current, (None if target == "base" else target)
        revisions = list(script.iterate_revisions(upper, lower))
        revisions = [r for r in revisions if r.revision != lower]
    else:
        revisions = list(reversed(list(script.iterate_revisions(target, current))))
        revisions = [r for r in revisions if r.revision != current]
    return [
        Step(r.revision, _title(r.module.__doc__), _losses(r.module) if downgrade else ())
        for r in revisions
    ]


class LockTimeoutError(HubsyncError, RuntimeError):
    """A revision could not take a lock within LOCK_TIMEOUT, however many times it tried."""

    def __init__(self, revision: str, attempts: int) -> None:
        self.revision = revision
        super().__init__(
            f"revision {revision} could not take a lock within {LOCK_TIMEOUT} "
            f"({attempts} attempt(s)): another transaction holds a lock on a table it changes "
            "(look for long transactions in pg_stat_activity). It gave up rather than hold "
            "the table's writers up behind it. Run `hubsync migrate` again once that "
            f"transaction ends: it carries on from {revision}."
        )


def is_lock_timeout(error: BaseException) -> bool:
    """PostgreSQL's lock_not_available (55P03): a statement waited past lock_timeout."""
    return isinstance(error, sa.exc.DBAPIError) and (
        getattr(error.orig, "sqlstate", None) == "55P03"
    )


async def run_steps(
    engine: AsyncEngine,
    steps: list[Step],
    *,
    downgrade: bool,
    target: str,
    report: Callable[[Step, float], None],
    attempts: int = 3,
    pause: float = 1.0,
) -> None:
    """Apply `steps` one revision at a time, reporting each with its duration. A revision that
    cannot take a lock in time (a long transaction in the way) is tried `attempts` times,
    `pause` seconds apart, then `LockTimeoutError`: each attempt holds writers up at most
    LOCK_TIMEOUT, and the revisions are written to be run again (app/store/online_ddl.py)."""
    for index, step in enumerate(steps):
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                if downgrade:
                    following = steps[index + 1].revision if index + 1 < len(steps) else target
                    await _run(engine, command.downgrade, following)
                else:
                    await _run(engine, command.upgrade, step.revision)
                break
            except sa.exc.DBAPIError as error:
                if not is_lock_timeout(error):
                    raise
                if attempt == attempts:
                    raise LockTimeoutError(step.revision, attempts) from error
                await asyncio.sleep(pause)
        report(step, time.monotonic() - started)


def sql_for(current: str | None, target: str, *, downgrade: bool) -> None:
    """Print the SQL the migration would run (Alembic's offline mode), running nothing."""
    config = alembic_config()
    if downgrade:
        command.downgrade(config, f"{current}:{target}", sql=True)
    else:
        command.upgrade(config, f"{current}:{target}" if current else target, sql=True)
