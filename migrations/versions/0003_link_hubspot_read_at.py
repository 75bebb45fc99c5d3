"""Links remember when hubsync last read their company: a CRM edit newer than that read which
hubsync's own write then overwrote is recognised from its webhook and decided again.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-29
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('hubspot_entity_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hubspot_read_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('hubspot_entity_links', schema=None) as batch_op:
        batch_op.drop_column('hubspot_read_at')
