"""Getting a database ready: migrate hubsync's schema and, on the embedded default, create
WARP's customers table with demo rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url

from app.settings import Settings
from app.store import migrate
from app.store.db import create_engine
from app.warp.demo import ensure_demo_customers

log = logging.getLogger("hubsync.migrate")


def is_embedded_default(settings: Settings) -> bool:
    """hubsync and WARP share one SQLite file: the newcomer's setup, which hubsync owns."""
    url = settings.database_url.reveal()
    return (
        make_url(url).get_backend_name() == "sqlite"
        and settings.effective_warp_database_url == settings.database_url
    )


async def migrate_database(
    settings: Settings,
    *,
    revision: str = "head",
    downgrade: bool = False,
    confirmed: bool = False,
    sql: bool = False,
    sql_from: str | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Migrate, saying each revision as it is applied with its duration, and a summary. A
    downgrade first says what it drops, and drops nothing without `confirmed`. `sql` prints
    what would run instead, from the database's revision or, without reading the database,
    from `sql_from` ("base": an empty one). The exit status: 0 done, 3 a downgrade that needs
    `--yes`."""
    target = migrate.head_revision() if revision == "head" and not downgrade else revision
    if sql and sql_from is not None:
        start = None if sql_from == "base" else sql_from
        migrate.sql_for(start, target or "head", downgrade=downgrade)
        return 0
    engine = create_engine(settings.database_url.reveal())
    try:
        current = await migrate.current_revision(engine)
        steps = migrate.plan(current, target or "head", downgrade=downgrade)
        if sql:
            try:
                migrate.sql_for(current, target or "head", downgrade=downgrade)
            except CommandError as exc:  # SQLite's batch changes need the live table
                say(f"hubsync: cannot show the SQL offline here: {exc}")
                return 2
            return 0
        if not steps:
            say(f"already at {current or 'nothing'}; nothing to do")
            return 0
        losses = [(step, loss) for step in steps for loss in step.losses]
        if downgrade and losses:
            say(f"downgrading from {current} to {revision} drops, with their data:")
            for step, loss in losses:
                say(f"  {step.revision}: {loss}")
            if not confirmed:
                say("nothing was changed; run again with --yes to drop them")
                return 3
        verb = "undoing" if downgrade else "applying"
        say(f"{verb} {len(steps)} revision(s), from {current or 'nothing'} to {target}:")
        started = time.monotonic()

        def report(step: migrate.Step, seconds: float) -> None:
            say(f"  {step.revision}  {seconds:6.2f} s  {step.title}")

        await migrate.run_steps(
            engine, steps, downgrade=downgrade, target=target or "base", report=report
        )
        now = await migrate.current_revision(engine)
        say(
            f"{'downgraded' if downgrade else 'migrated'} to {now or 'nothing'} "
            f"in {time.monotonic() - started:.2f} s"
        )
        log.info("database %s to %s", "downgraded" if downgrade else "migrated", now)
        if not downgrade and is_embedded_default(settings) and settings.demo_data:
            added = await ensure_demo_customers(engine, settings.effective_customers_table)
            if added:
                say(f"added {added} demo customers to {settings.effective_customers_table}")
        return 0
    finally:
        await engine.dispose()
