"""A fencing token for the sync queue: `claim` counts the claims of a job row (every claim
adds one), so a holder whose lease was lost and whose job was claimed again can be told
apart from the current holder in the same transaction that records its writes.

Revision ID: replicas
Revises: 0007
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = 'replicas'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('hubspot_sync_queue', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('claim', sa.BigInteger(), server_default='0', nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('hubspot_sync_queue', schema=None) as batch_op:
        batch_op.drop_column('claim')
