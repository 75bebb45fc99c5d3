"""The console's time series: one row per minute sampled by the scheduler (jobs done and
failed, queue depth and oldest wait, webhook events, HubSpot requests against the limit and
429s, queue -> HubSpot latency), kept for eight days.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0016'
down_revision: Union[str, Sequence[str], None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'


def upgrade() -> None:
    op.create_table(
        'hubsync_minute_samples',
        sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
        sa.Column('jobs_done', sa.Integer(), nullable=False),
        sa.Column('jobs_failed', sa.Integer(), nullable=False),
        sa.Column('queue_depth', sa.Integer(), nullable=False),
        sa.Column('oldest_wait_seconds', sa.Float(), nullable=False),
        sa.Column('webhook_events', sa.Integer(), nullable=False),
        sa.Column('hubspot_requests', sa.Integer(), nullable=True),
        sa.Column('hubspot_limit', sa.Integer(), nullable=False),
        sa.Column('hubspot_429', sa.Integer(), server_default='0', nullable=False),
        sa.Column('latency_p50_ms', sa.Float(), nullable=True),
        sa.Column('latency_p99_ms', sa.Float(), nullable=True),
        sa.Column(
            'sampled_at',
            sa.DateTime(timezone=True),
            server_default=sa.text('CURRENT_TIMESTAMP'),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint('minute', name=op.f('pk_hubsync_minute_samples')),
    )
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    op.drop_table('hubsync_minute_samples')
