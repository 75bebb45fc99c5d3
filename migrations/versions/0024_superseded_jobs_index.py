"""Closing a batch's webhook events reads the batch, not the entities' whole history; the sync
log loses an index that repeated another.

Every batch closes the events of the earlier jobs the queue folded into its jobs (superseded
ones). Found through the queue's entity index, that read every earlier job of each of the
batch's entities (a customer synced a hundred times a day keeps seven hundred, by the queue's
retention) to keep the few superseded ones. The partial index holds only those.

`ix_hubspot_sync_log_warp_customer_id` (warp_customer_id) was a prefix of
`ix_hubspot_sync_log_customer_id` (warp_customer_id, id), which serves every query it served;
every log row written (a hundred a batch) paid for both.

Built before anything is dropped, both without blocking the tables' writers (online_ddl).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from typing import Sequence, Union

import sqlalchemy as sa

from app.store import online_ddl
from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0024'
down_revision: Union[str, Sequence[str], None] = '0023'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Indexes only, and the dropped one's queries are served by the one it repeated: the previous
# release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'
SUPERSEDED = sa.text("last_error_kind = 'superseded'")


def upgrade() -> None:
    online_ddl.create_index(
        'ix_hubspot_sync_queue_superseded',
        'hubspot_sync_queue',
        ('entity_type', 'entity_key', 'id'),
        postgresql_where=SUPERSEDED,
        sqlite_where=SUPERSEDED,
    )
    online_ddl.drop_index('ix_hubspot_sync_log_warp_customer_id', 'hubspot_sync_log')
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    online_ddl.create_index(
        'ix_hubspot_sync_log_warp_customer_id', 'hubspot_sync_log', ('warp_customer_id',)
    )
    online_ddl.drop_index('ix_hubspot_sync_queue_superseded', 'hubspot_sync_queue')
