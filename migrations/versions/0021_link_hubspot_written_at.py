"""Links remember when HubSpot recorded hubsync's last write to their company (the write's
`updatedAt`, HubSpot's own clock): the catch-up tells a search hit that only lags behind that
write (HubSpot's search index shows the version before it for a few moments) from news.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0021'
down_revision: Union[str, Sequence[str], None] = '0020'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only (a nullable column, no default: no table rewrite): the previous release's
# code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'


def upgrade() -> None:
    with op.batch_alter_table('hubspot_entity_links', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('hubspot_written_at', sa.DateTime(timezone=True), nullable=True)
        )
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    with op.batch_alter_table('hubspot_entity_links', schema=None) as batch_op:
        batch_op.drop_column('hubspot_written_at')
