"""Compile a parsed search filter (``evalkit.tracking.filter``) into SQLAlchemy expressions.

Every value becomes a bound parameter, so no filter text ever reaches the SQL as code.
Metric conditions test the latest value; a NaN is stored as NULL, so it never matches.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, not_, or_, select

from evalkit.tracking import filter as f
from evalkit.tracking.sql import schema as t

_ENTITY_TABLES = {f.ENTITY_METRIC: t.latest_metrics, f.ENTITY_PARAM: t.params, f.ENTITY_TAG: t.tags}


def compile_filter(expression: f.Expr) -> ColumnElement[bool]:
    """A condition on ``runs`` rows equivalent to ``expression``."""
    if isinstance(expression, f.And):
        return and_(*(compile_filter(item) for item in expression.items))
    if isinstance(expression, f.Or):
        return or_(*(compile_filter(item) for item in expression.items))
    if isinstance(expression, f.Not):
        return not_(compile_filter(expression.item))
    return _compile_comparison(expression)


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    match op:
        case "=":
            return column == value
        case "!=":
            return column != value
        case "<":
            return column < value
        case "<=":
            return column <= value
        case ">":
            return column > value
        case ">=":
            return column >= value
        # An explicit escape: PostgreSQL defaults to backslash, SQLite to none.
        case "LIKE":
            return column.like(value, escape="\\")
        case "NOT LIKE":
            return column.not_like(value, escape="\\")
        case "ILIKE":
            return column.ilike(value, escape="\\")
        case "NOT ILIKE":
            return column.not_ilike(value, escape="\\")
        case "IN":
            return column.in_(list(value))
        case "NOT IN":
            return column.not_in(list(value))
    raise AssertionError(f"unhandled operator {op}")


def _compile_comparison(comparison: f.Comparison) -> ColumnElement[bool]:
    key, op = comparison.key, comparison.op
    if key.entity == f.ENTITY_ATTRIBUTE:
        column = t.runs.c[key.name]
        if op == "IS NULL":
            return column.is_(None)
        if op == "IS NOT NULL":
            return column.is_not(None)
        value = comparison.value
        if key.name == "experiment_id":
            value = tuple(int(v) for v in value) if isinstance(value, tuple) else int(value)
        # Spelled out so that NOT (end_time > x) also holds for runs with no end_time yet.
        return and_(column.is_not(None), _compare(column, op, value))

    table = _ENTITY_TABLES[key.entity]
    has_key = select(table.c.run_id).where(table.c.key == key.name)
    if op == "IS NULL":
        return t.runs.c.run_id.not_in(has_key)
    if op == "IS NOT NULL":
        return t.runs.c.run_id.in_(has_key)
    return t.runs.c.run_id.in_(has_key.where(_compare(table.c.value, op, comparison.value)))


def order_clauses(query: Select[Any], orders: list[f.OrderBy]) -> tuple[Select[Any], list[Any]]:
    """Join what the sort keys need onto ``query``; return it with the ORDER BY terms.

    Runs without the sort key (or with NaN) come last either way; ties fall back to the newest
    start time, then the run id, so that pages are stable.
    """
    sort: list[Any] = []
    for index, order in enumerate(orders):
        key = order.key
        if key.entity == f.ENTITY_ATTRIBUTE:
            column = t.runs.c[key.name]
        else:
            table = _ENTITY_TABLES[key.entity].alias(f"sort_{index}")
            query = query.outerjoin(table, and_(table.c.run_id == t.runs.c.run_id, table.c.key == key.name))
            column = table.c.value
        sort.append((column.asc() if order.ascending else column.desc()).nulls_last())
    sort += [t.runs.c.start_time.desc(), t.runs.c.run_id]
    return query, sort
