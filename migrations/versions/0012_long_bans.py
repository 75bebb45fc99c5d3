"""A billing account number is as long as WARP's `text` column lets it be: the reconciliation
report's ban and ids, and a link's ban, become text (a longer ban than 64 characters failed
every reconciliation run with "value too long", and a sync's link write). Types widen only.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'

WIDENED = {
    'hubspot_reconciliation_items': ('warp_customer_id', 'hubspot_company_id', 'warp_ban'),
    'hubspot_entity_links': ('warp_ban',),
}


def upgrade() -> None:
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column, existing_type=sa.String(length=64), type_=sa.Text(),
                    existing_nullable=True,
                )
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    # Values longer than the old type are cut to fit (they could not exist before).
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column, existing_type=sa.Text(), type_=sa.String(length=64),
                    existing_nullable=True, postgresql_using=f'left({column}, 64)',
                )
