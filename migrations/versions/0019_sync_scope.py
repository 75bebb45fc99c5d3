"""The sync scope (which customers are synced at all) and the customers a sync skipped as
out of it.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0019'
down_revision: Union[str, Sequence[str], None] = '0018'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'hubsync_sync_scope',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('conditions', JSON, nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
        sa.Column('updated_by', sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hubsync_sync_scope')),
    )
    op.create_table(
        'hubsync_scope_exits',
        sa.Column('warp_customer_id', sa.String(length=64), nullable=False),
        sa.Column('left_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
        sa.PrimaryKeyConstraint('warp_customer_id', name=op.f('pk_hubsync_scope_exits')),
    )
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    op.drop_table('hubsync_scope_exits')
    op.drop_table('hubsync_sync_scope')
