"""Reconciliation: checkpoints and ownership on each run, its items, the pairs it has seen,
and the catch-up's watermarks.

Revision ID: 0005
Revises: 0006
Create Date: 2026-11-29
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.store import online_ddl

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    # On an existing table: built without blocking its writers (first: each build commits,
    # and a run cut short starts again from the top).
    # At most one run at a time, whoever started it: the database refuses a second.
    online_ddl.create_index('uq_hubspot_reconciliation_runs_running', 'hubspot_reconciliation_runs', ['status'], unique=True, postgresql_where=RUNNING, sqlite_where=RUNNING)
    online_ddl.create_index('ix_hubspot_reconciliation_runs_started_at', 'hubspot_reconciliation_runs', ['started_at'])
    with op.batch_alter_table('hubspot_reconciliation_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requested_by', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('phase', sa.String(length=16), server_default='hubspot', nullable=False))
        batch_op.add_column(sa.Column('hubspot_after', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('warp_after', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hubspot_calls', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('jobs_created', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('resumed', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table('hubspot_reconciliation_items',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('run_id', BigId, nullable=False),
    sa.Column('category', sa.String(length=24), nullable=False),
    sa.Column('warp_customer_id', sa.String(length=64), nullable=True),
    sa.Column('hubspot_company_id', sa.String(length=64), nullable=True),
    sa.Column('warp_ban', sa.String(length=64), nullable=True),
    sa.Column('fields', Json, nullable=True),
    sa.Column('action', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('job_id', BigId, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hubspot_reconciliation_items'))
    )
    with op.batch_alter_table('hubspot_reconciliation_items', schema=None) as batch_op:
        batch_op.create_index('ix_hubspot_reconciliation_items_run', ['run_id', 'category', 'id'], unique=False)

    op.create_table('hubspot_reconciliation_pairs',
    sa.Column('run_id', BigId, nullable=False),
    sa.Column('warp_customer_id', sa.String(length=64), nullable=False),
    sa.Column('hubspot_company_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'warp_customer_id', name=op.f('pk_hubspot_reconciliation_pairs'))
    )
    op.create_table('hubspot_catchup_watermarks',
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('watermark', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('queued', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('source', name=op.f('pk_hubspot_catchup_watermarks'))
    )


def downgrade() -> None:
    op.drop_table('hubspot_catchup_watermarks')
    op.drop_table('hubspot_reconciliation_pairs')
    with op.batch_alter_table('hubspot_reconciliation_items', schema=None) as batch_op:
        batch_op.drop_index('ix_hubspot_reconciliation_items_run')
    op.drop_table('hubspot_reconciliation_items')
    online_ddl.drop_index('ix_hubspot_reconciliation_runs_started_at', 'hubspot_reconciliation_runs')
    online_ddl.drop_index('uq_hubspot_reconciliation_runs_running', 'hubspot_reconciliation_runs')
    with op.batch_alter_table('hubspot_reconciliation_runs', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('resumed')
        batch_op.drop_column('jobs_created')
        batch_op.drop_column('hubspot_calls')
        batch_op.drop_column('warp_after')
        batch_op.drop_column('hubspot_after')
        batch_op.drop_column('phase')
        batch_op.drop_column('requested_by')
