"""The operator's console: paused sync directions, the admin audit trail, and the indexes
that keep the console's pages fast (an entity's jobs, the failed list, jobs finished per
minute, a customer's log, the open conflicts, webhook events by status).

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-29
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.store import online_ddl

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
INDEXES = (
    ('ix_hubspot_sync_queue_entity', 'hubspot_sync_queue', ('entity_type', 'entity_key', 'id')),
    ('ix_hubspot_sync_queue_state_id', 'hubspot_sync_queue', ('state', 'id')),
    ('ix_hubspot_sync_queue_finished', 'hubspot_sync_queue', ('finished_at',)),
    ('ix_hubspot_sync_log_customer_id', 'hubspot_sync_log', ('warp_customer_id', 'id')),
    ('ix_hubspot_conflicts_state_id', 'hubspot_conflicts', ('state', 'id')),
    ('ix_hubspot_webhook_events_status_id', 'hubspot_webhook_events', ('status', 'id')),
)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql')


def upgrade() -> None:
    # On existing tables, which may be big: built without blocking their writers (first: each
    # build commits, and a run cut short starts again from the top).
    for name, table, columns in INDEXES:
        online_ddl.create_index(name, table, columns)
    op.create_table(
        'hubsync_paused_directions',
        sa.Column('direction', sa.String(length=16), nullable=False),
        sa.Column('paused_by', sa.String(length=128), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('paused_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
        sa.PrimaryKeyConstraint('direction', name=op.f('pk_hubsync_paused_directions')),
    )
    op.create_table(
        'hubsync_admin_audit',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('actor', sa.String(length=128), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('target', sa.String(length=255), nullable=True),
        sa.Column('detail', JSON, nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hubsync_admin_audit')),
    )


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        online_ddl.drop_index(name, table)
    op.drop_table('hubsync_admin_audit')
    op.drop_table('hubsync_paused_directions')
