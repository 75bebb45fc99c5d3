"""Getting a database ready: migrate hubsync's schema and, on the embedded default, create
WARP's customers table with demo rows."""

from __future__ import annotations

import logging

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
    settings: Settings, *, revision: str = "head", downgrade: bool = False
) -> None:
    engine = create_engine(settings.database_url.reveal())
    try:
        if downgrade:
            await migrate.downgrade(engine, revision)
            log.info("database downgraded to %s", revision)
            return
        await migrate.upgrade(engine, revision)
        log.info("database migrated to %s", revision)
        if is_embedded_default(settings) and settings.demo_data:
            added = await ensure_demo_customers(engine, settings.effective_customers_table)
            if added:
                log.info("added %d demo customers to %s", added, settings.effective_customers_table)
    finally:
        await engine.dispose()
