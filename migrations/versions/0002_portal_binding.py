"""The HubSpot portal this database's links belong to.

Revision ID: 0002
Revises: 0005
Create Date: 2026-11-29
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('hubsync_portal',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('portal_id', sa.String(length=32), nullable=False),
    sa.Column('base_url', sa.Text(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hubsync_portal'))
    )
    # A PostgreSQL database linked before portals were recorded belongs to a real portal whose
    # id is not known yet: the first start with a token adopts it; the sandbox never does.
    # (The embedded SQLite file of older versions was the sandbox's: left unrecorded.)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            "INSERT INTO hubsync_portal (id, kind, portal_id) "
            "SELECT 1, 'hubspot', 'unknown' WHERE EXISTS (SELECT 1 FROM hubspot_entity_links)"
        )


def downgrade() -> None:
    op.drop_table('hubsync_portal')
