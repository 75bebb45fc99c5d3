"""The catch-up's WARP side reads in commit order (a transaction-id horizon on PostgreSQL),
and a search window too full to split is recorded where the operator sees it.

Revision ID: catchup
Revises: 0007
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = 'catchup'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('hubspot_catchup_watermarks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('position', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('cut_short', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cut_short_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cut_short_detail', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('hubspot_catchup_watermarks', schema=None) as batch_op:
        batch_op.drop_column('cut_short_detail')
        batch_op.drop_column('cut_short_at')
        batch_op.drop_column('cut_short')
        batch_op.drop_column('position')
