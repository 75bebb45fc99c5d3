"""The reports' outbox: each report (after a scheduled reconciliation run, a scheduled job
that failed or runs late) and destination (webhook, e-mail) as a row written before it is
sent, retried with backoff until it is delivered or given up.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0017'
down_revision: Union[str, Sequence[str], None] = '0016'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'hubsync_report_deliveries',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('destination', sa.String(length=16), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('summary', JSON, nullable=False),
        sa.Column('run_id', BIG_ID, nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hubsync_report_deliveries')),
    )
    with op.batch_alter_table('hubsync_report_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_hubsync_report_deliveries_key', ['key', 'destination'], unique=True)
        batch_op.create_index('ix_hubsync_report_deliveries_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_hubsync_report_deliveries_created_at'), ['created_at'], unique=False)
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    with op.batch_alter_table('hubsync_report_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hubsync_report_deliveries_created_at'))
        batch_op.drop_index('ix_hubsync_report_deliveries_due')
        batch_op.drop_index('ix_hubsync_report_deliveries_key')
    op.drop_table('hubsync_report_deliveries')
