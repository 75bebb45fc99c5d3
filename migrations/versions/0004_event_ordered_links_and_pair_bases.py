"""Links ordered by event time, merge bases per (WARP field, HubSpot property) pair.

* `hubspot_entity_links.state_changed_at`: the event time of the latest deletion or restore
  applied to the link, so a stale "company gone" (observed before a restore) cannot undo it.
* `hubspot_field_state.hubspot_property`: the HubSpot property the field's state (and merge
  base) belongs to; a rule pointed at another property starts with no base. Existing rows
  take their rule's current property.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store import online_ddl

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Nullable columns without a default: catalog changes, no rewrite. On PostgreSQL the
    # backfill below commits what came before, so a run cut short is resumed, not repeated.
    again = {'if_not_exists': True} if online_ddl.on_postgresql() else {}
    op.add_column('hubspot_entity_links', sa.Column('state_changed_at', sa.DateTime(timezone=True), nullable=True), **again)
    op.add_column('hubspot_field_state', sa.Column('hubspot_property', sa.String(length=128), nullable=True), **again)
    # Existing rows take their rule's property, a batch at a time (a row left NULL belongs to
    # whichever property its rule names: the code reads NULL as "not recorded").
    online_ddl.backfill(
        'hubspot_field_state',
        ('warp_customer_id', 'field'),
        'hubspot_property = (SELECT c.hubspot_property FROM hubspot_sync_config c'
        ' WHERE c.warp_field = t.field)',
        where='t.hubspot_property IS NULL',
    )


def downgrade() -> None:
    with op.batch_alter_table('hubspot_field_state', schema=None) as batch_op:
        batch_op.drop_column('hubspot_property')
    with op.batch_alter_table('hubspot_entity_links', schema=None) as batch_op:
        batch_op.drop_column('state_changed_at')
