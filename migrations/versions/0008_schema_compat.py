"""Expand, then contract: each migration from here on records the oldest code revision that
still works on the schema it leaves (`hubsync_schema_compat`), so a running older release
stays ready while a newer one is rolled out beside it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# The oldest code this schema serves: 0007's code knows nothing of the new table.
SERVES_CODE_FROM = '0007'


def upgrade() -> None:
    op.create_table(
        'hubsync_schema_compat',
        sa.Column('revision', sa.String(length=64), nullable=False),
        sa.Column('serves_code_from', sa.String(length=64), nullable=False),
        sa.Column('applied_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
        sa.PrimaryKeyConstraint('revision', name=op.f('pk_hubsync_schema_compat')),
    )
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    op.drop_table('hubsync_schema_compat')
