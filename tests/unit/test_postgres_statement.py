"""`app.sql.postgres_sql`: a Core statement compiled once for asyncpg, its arguments ordered
by parameter name, with the values the statement binds itself filled in."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, update

from app.sql import any_param, postgres_sql

table = Table(
    "t", MetaData(), Column("id", Integer), Column("name", String), Column("state", String)
)


def test_arguments_follow_the_placeholders_with_the_statement_s_own_values() -> None:
    statement = postgres_sql(
        update(table)
        .where(any_param(table.c.id, "ids"), table.c.state == "open")
        .values(state="closed", name=bindparam("name"))
    )
    assert statement.sql.count("$") == 4
    assert statement.sql.index("$1") < statement.sql.index("$2") < statement.sql.index("$4")
    arguments = statement.args(ids=[1, 2], name="x")
    by_placeholder = dict(zip(statement.names, arguments, strict=True))
    assert by_placeholder == {"state": "closed", "name": "x", "ids": [1, 2], "state_1": "open"}
    assert "ANY ($3::INTEGER[])" in statement.sql


def test_a_parameter_not_given_is_refused() -> None:
    statement = postgres_sql(update(table).where(any_param(table.c.id, "ids")).values(name="x"))
    with pytest.raises(KeyError):
        statement.args()


def test_an_expanding_in_list_is_refused_when_compiled() -> None:
    # Its SQL depends on the number of values: it cannot be compiled once.
    with pytest.raises(ValueError, match="expanding IN"):
        postgres_sql(update(table).where(table.c.id.in_([1, 2])).values(name="x"))
