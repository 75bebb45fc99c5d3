"""The console and /metrics at a million customers: indexes that let the dashboard's counts and
the queue's figures be read from an index alone (PostgreSQL's index-only scan) instead of
visiting a row of the queue for each job counted.

* (state, finished_at): jobs done in 24 h and jobs finished per minute (the dashboard).
* (state, direction, last_error_kind): jobs per state and direction (/metrics), the failed
  jobs' error kinds (the failed list's filter).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from app.store import online_ddl
from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0020'
down_revision: Union[str, Sequence[str], None] = '0019'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'
INDEXES = (
    ('ix_hubspot_sync_queue_state_finished', 'hubspot_sync_queue', ('state', 'finished_at')),
    (
        'ix_hubspot_sync_queue_state_direction_kind',
        'hubspot_sync_queue',
        ('state', 'direction', 'last_error_kind'),
    ),
)


def upgrade() -> None:
    # The queue may be big: built without blocking its writers (online_ddl).
    for name, table, columns in INDEXES:
        online_ddl.create_index(name, table, columns)
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    for name, table, _columns in reversed(INDEXES):
        online_ddl.drop_index(name, table)
