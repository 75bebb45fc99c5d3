"""When each WARP column of a customer last changed, fed by the opt-in change capture in WARP
(`hubsync capture install`): WARP's per-field change times for LATEST_WINS.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0018'
down_revision: Union[str, Sequence[str], None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'


def upgrade() -> None:
    op.create_table(
        'hubsync_warp_column_changes',
        sa.Column('warp_customer_id', sa.String(length=64), nullable=False),
        sa.Column('column', sa.String(length=128), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            'warp_customer_id', 'column', name=op.f('pk_hubsync_warp_column_changes')
        ),
    )
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    op.drop_table('hubsync_warp_column_changes')
