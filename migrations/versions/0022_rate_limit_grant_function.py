"""The deployment's rate-limit grant in one round trip (PostgreSQL): a function that takes the
bucket's lock, then counts the window and records the grant in a statement of its own.

Before, a grant was four round trips (BEGIN, the lock, the count-and-insert, COMMIT), made
while every other request of the deployment waited for the lock; the function runs the same
two steps server-side. A VOLATILE PL/pgSQL function takes a fresh snapshot for each statement
it runs, so the count still sees every grant committed before the lock was ours. Called in a
statement of its own outside a transaction, the lock is held until that statement commits.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from typing import Sequence, Union

from alembic import op

from app.store import online_ddl
from app.store.migrate import declare_compatible, forget_compatible

# revision identifiers, used by Alembic.
revision: str = '0022'
down_revision: Union[str, Sequence[str], None] = '0021'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None
# Additive only (a new function; the grants' table is unchanged, and older code's four round
# trips take the same lock): the previous release's code (0007) runs on the schema this leaves.
SERVES_CODE_FROM = '0007'

CREATE = """
CREATE OR REPLACE FUNCTION hubsync_rate_limit_grant(
    lock_key bigint, grant_bucket text, window_seconds double precision, grant_limit integer
) RETURNS TABLE (
    clock timestamptz, paused_until timestamptz, used bigint, oldest timestamptz,
    pause_reason text, grant_id bigint
)
LANGUAGE plpgsql VOLATILE AS $function$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    -- The grants' log does not wait for the disk on commit (app/hubspot/ratelimit.py).
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    WITH s AS (
      SELECT t.now AS now,
             (SELECT p.until FROM hubspot_rate_limit_pauses p WHERE p.bucket = grant_bucket)
               AS until,
             (SELECT count(*) FROM hubspot_rate_limit_grants g
               WHERE g.bucket = grant_bucket
                 AND g.granted_at > t.now - make_interval(secs => window_seconds))
               AS in_window,
             (SELECT min(g.granted_at) FROM hubspot_rate_limit_grants g
               WHERE g.bucket = grant_bucket
                 AND g.granted_at > t.now - make_interval(secs => window_seconds))
               AS first_in_window,
             (SELECT p.reason FROM hubspot_rate_limit_pauses p WHERE p.bucket = grant_bucket)
               AS why
      FROM (SELECT clock_timestamp() AS now) t
    ), granted AS (
      INSERT INTO hubspot_rate_limit_grants (bucket, granted_at)
      SELECT grant_bucket, s.now FROM s
      WHERE (s.until IS NULL OR s.until <= s.now) AND s.in_window < grant_limit
      RETURNING hubspot_rate_limit_grants.id AS new_id
    )
    SELECT s.now, s.until, s.in_window, s.first_in_window, s.why,
           (SELECT granted.new_id FROM granted)::bigint
    FROM s;
END
$function$
"""
DROP = "DROP FUNCTION IF EXISTS hubsync_rate_limit_grant(bigint, text, double precision, integer)"


def upgrade() -> None:
    if online_ddl.on_postgresql():  # SQLite's limiter is the process's own
        op.execute(CREATE)
    declare_compatible(revision, SERVES_CODE_FROM)


def downgrade() -> None:
    forget_compatible(revision)
    if online_ddl.on_postgresql():
        op.execute(DROP)
