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

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql')


def upgrade() -> None:
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
    with op.batch_alter_table('hubspot_sync_queue', schema=None) as batch_op:
        batch_op.create_index('ix_hubspot_sync_queue_entity', ['entity_type', 'entity_key', 'id'], unique=False)
        batch_op.create_index('ix_hubspot_sync_queue_state_id', ['state', 'id'], unique=False)
        batch_op.create_index('ix_hubspot_sync_queue_finished', ['finished_at'], unique=False)
    with op.batch_alter_table('hubspot_sync_log', schema=None) as batch_op:
        batch_op.create_index('ix_hubspot_sync_log_customer_id', ['warp_customer_id', 'id'], unique=False)
    with op.batch_alter_table('hubspot_conflicts', schema=None) as batch_op:
        batch_op.create_index('ix_hubspot_conflicts_state_id', ['state', 'id'], unique=False)
    with op.batch_alter_table('hubspot_webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_hubspot_webhook_events_status_id', ['status', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('hubspot_webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_hubspot_webhook_events_status_id')
    with op.batch_alter_table('hubspot_conflicts', schema=None) as batch_op:
        batch_op.drop_index('ix_hubspot_conflicts_state_id')
    with op.batch_alter_table('hubspot_sync_log', schema=None) as batch_op:
        batch_op.drop_index('ix_hubspot_sync_log_customer_id')
    with op.batch_alter_table('hubspot_sync_queue', schema=None) as batch_op:
        batch_op.drop_index('ix_hubspot_sync_queue_finished')
        batch_op.drop_index('ix_hubspot_sync_queue_state_id')
        batch_op.drop_index('ix_hubspot_sync_queue_entity')
    op.drop_table('hubsync_admin_audit')
    op.drop_table('hubsync_paused_directions')
