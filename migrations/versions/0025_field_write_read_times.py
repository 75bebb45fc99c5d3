"""Each field remembers the read behind hubsync's last write of it to HubSpot: a CRM edit made
after that read and before the write was overwritten by it (HubSpot has no compare-and-set),
and is taken back when its webhook comes, even after another sync of the company has read it.

Until now the window started at the link's last read (`hubspot_read_at`), which every sync
moves: an edit whose webhook came after the next sync's read was lost for good. Nullable:
fields written before read as "not recorded" and fall back to the link's read, as before.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-08
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0025'
down_revision: Union[str, Sequence[str], None] = '0024'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'


def upgrade() -> None:
    with op.batch_alter_table('hubspot_field_state', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('hubspot_write_read_at', sa.DateTime(timezone=True), nullable=True)
        )
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    with op.batch_alter_table('hubspot_field_state', schema=None) as batch_op:
        batch_op.drop_column('hubspot_write_read_at')
