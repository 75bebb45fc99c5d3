"""The catch-up's WARP side reads in commit order (a transaction-id horizon on PostgreSQL),
and a search window too full to split is recorded where the operator sees it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store.migrate import declare_compatible, forget_compatible

revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'


def upgrade() -> None:
    with op.batch_alter_table('hubspot_catchup_watermarks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('position', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('cut_short', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cut_short_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cut_short_detail', sa.Text(), nullable=True))
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    with op.batch_alter_table('hubspot_catchup_watermarks', schema=None) as batch_op:
        batch_op.drop_column('cut_short_detail')
        batch_op.drop_column('cut_short_at')
        batch_op.drop_column('cut_short')
        batch_op.drop_column('position')
