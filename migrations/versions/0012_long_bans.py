"""A billing account number is as long as WARP's `text` column lets it be: links and
reconciliation items get `text` columns for their ban and ids, beside the varchar(64) ones
(a ban longer than 64 characters failed every reconciliation run with "value too long", and a
sync's link write).

Expand only. The varchar(64) columns keep their type: the previous release (0007) reads them
through prepared statements, which PostgreSQL refuses once a column's type changed ("cached
plan must not change result type"). New, nullable, `text`:

- `hubspot_entity_links.warp_ban_text`, indexed (CONCURRENTLY on PostgreSQL) like `warp_ban`;
- `hubspot_reconciliation_items.warp_customer_id_text`, `hubspot_company_id_text`,
  `warp_ban_text`.

No backfill: the code from here on writes both columns (the old one only when the value fits)
and reads the old column, else the new one (app/store/widened.py). A later release copies the
old columns into the new ones and drops the old ones (the contract).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store import online_ddl
from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'

LINK_BAN_INDEX = 'ix_hubspot_entity_links_warp_ban_text'


def upgrade() -> None:
    with op.batch_alter_table('hubspot_entity_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warp_ban_text', sa.Text(), nullable=True))
    with op.batch_alter_table('hubspot_reconciliation_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warp_customer_id_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('hubspot_company_id_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('warp_ban_text', sa.Text(), nullable=True))
    online_ddl.create_index(LINK_BAN_INDEX, 'hubspot_entity_links', ['warp_ban_text'])
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    # Bans and ids longer than 64 characters were only in the dropped columns: those links
    # and items keep no ban (or id) rather than a cut one, which could be another's.
    forget_compatible(revision)
    online_ddl.drop_index(LINK_BAN_INDEX, 'hubspot_entity_links')
    with op.batch_alter_table('hubspot_reconciliation_items', schema=None) as batch_op:
        batch_op.drop_column('warp_ban_text')
        batch_op.drop_column('hubspot_company_id_text')
        batch_op.drop_column('warp_customer_id_text')
    with op.batch_alter_table('hubspot_entity_links', schema=None) as batch_op:
        batch_op.drop_column('warp_ban_text')
