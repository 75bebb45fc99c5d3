"""Console sessions kept on the server (logout, "sign out everywhere" and a password change
end them before their cookie expires) and failed console logins counted in the database (the
login limit, per client address and per login name, shared by every process).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0013'
down_revision: Union[str, Sequence[str], None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only: the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'hubsync_admin_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('who', sa.String(length=128), nullable=False),
        sa.Column('client', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hubsync_admin_sessions')),
    )
    op.create_table(
        'hubsync_admin_login_failures',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('failed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hubsync_admin_login_failures')),
    )
    with op.batch_alter_table('hubsync_admin_login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_hubsync_admin_login_failures_key', ['key', 'failed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_hubsync_admin_login_failures_failed_at'), ['failed_at'], unique=False)
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    with op.batch_alter_table('hubsync_admin_login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hubsync_admin_login_failures_failed_at'))
        batch_op.drop_index('ix_hubsync_admin_login_failures_key')
    op.drop_table('hubsync_admin_login_failures')
    op.drop_table('hubsync_admin_sessions')
