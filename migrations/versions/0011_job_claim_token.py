"""A fencing token for the sync queue: `claim` counts the claims of a job row (every claim
adds one), so a holder whose lease was lost and whose job was claimed again can be told
apart from the current holder in the same transaction that records its writes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'


def upgrade() -> None:
    with op.batch_alter_table('hubspot_sync_queue', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('claim', sa.BigInteger(), server_default='0', nullable=True)
        )
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    with op.batch_alter_table('hubspot_sync_queue', schema=None) as batch_op:
        batch_op.drop_column('claim')
