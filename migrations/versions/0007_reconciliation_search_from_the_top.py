"""The full reconciliation reads HubSpot's companies from both ends: the list API from the
lowest id up and a search by `hs_object_id` from the highest down, meeting in between. The
run's checkpoint gains the second stream's position (`hubspot_scan`).

Revision ID: 0007
Revises: 0002
Create Date: 2026-11-30
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('hubspot_reconciliation_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hubspot_scan', JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('hubspot_reconciliation_runs', schema=None) as batch_op:
        batch_op.drop_column('hubspot_scan')
