"""Reconciliation progress an operator can follow: the pages read on each side so far
(HubSpot's list and search, WARP's customers), saved with each page's checkpoint. Nullable:
runs from before read as "not recorded".

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0015'
down_revision: Union[str, Sequence[str], None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'


def upgrade() -> None:
    with op.batch_alter_table('hubspot_reconciliation_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hubspot_pages', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('warp_pages', sa.Integer(), nullable=True))
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    with op.batch_alter_table('hubspot_reconciliation_runs', schema=None) as batch_op:
        batch_op.drop_column('warp_pages')
        batch_op.drop_column('hubspot_pages')
