"""The claim's and the lease rescue's indexes hold only the jobs they look for: pending jobs
(by priority, due time, id) and running ones (by lease). Indexed on `state` in full, every
claim and every completion rewrote an entry in each of them for every job, as a job moves
pending -> running -> done (a change of `state` is never a HOT update), and they kept an entry
for every done job. Partial, a claim adds one entry (the lease) and a completion none.

The new indexes are built before the old ones are dropped, both without blocking the queue's
writers (online_ddl); every query that used the old ones names the state as a literal
(`state = 'pending'`, `state = 'running'`), which is what lets the planner use a partial index.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from typing import Sequence, Union

import sqlalchemy as sa

from app.store import online_ddl
from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0023'
down_revision: Union[str, Sequence[str], None] = '0022'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Indexes only, and the old ones' queries are served by the new ones: the previous release's
# code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'
TABLE = 'hubspot_sync_queue'
PENDING = sa.text("state = 'pending'")
RUNNING = sa.text("state = 'running'")


def upgrade() -> None:
    online_ddl.create_index(
        'ix_hubspot_sync_queue_due',
        TABLE,
        ('priority', 'run_at', 'id'),
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    online_ddl.create_index(
        'ix_hubspot_sync_queue_leased',
        TABLE,
        ('lease_until',),
        postgresql_where=RUNNING,
        sqlite_where=RUNNING,
    )
    online_ddl.drop_index('ix_hubspot_sync_queue_claim', TABLE)
    online_ddl.drop_index('ix_hubspot_sync_queue_lease', TABLE)
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    online_ddl.create_index('ix_hubspot_sync_queue_lease', TABLE, ('state', 'lease_until'))
    online_ddl.create_index(
        'ix_hubspot_sync_queue_claim', TABLE, ('state', 'priority', 'run_at', 'id')
    )
    online_ddl.drop_index('ix_hubspot_sync_queue_leased', TABLE)
    online_ddl.drop_index('ix_hubspot_sync_queue_due', TABLE)
