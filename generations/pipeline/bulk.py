"""Many rows, each with its own values, changed in one UPDATE.

``update_each`` writes ``{pk: {field: value}}`` as one statement. On PostgreSQL it is an
``UPDATE … FROM (VALUES …)``: one line of values a row, each value cast to its column's type; a
field only some rows set comes with a flag (``CASE WHEN v.set_x THEN v.x ELSE x END``). Elsewhere
(SQLite) a field every row sets to the same value is a plain assignment and one that differs is
a ``CASE WHEN id = … THEN … ELSE field END`` (Django's expressions: correct everywhere, but
building them costs about 10 ms a row in Python, which is why PostgreSQL gets its own SQL).
The queryset's own conditions (still leased, still in progress) apply to every row, so a row
another worker took meanwhile is left alone, as the one-row updates did.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import Case, Expression, F, Field, QuerySet, Value, When

from generations.models import Generation


def update_each(
    queryset: QuerySet[Generation],
    values: dict[Any, dict[str, Any]],
    common: dict[str, Any] | None = None,
) -> int:
    """One UPDATE of the rows ``values`` names (within ``queryset``); returns how many matched."""
    if not values:
        return 0
    if connections[queryset.db].vendor == "postgresql" and not any(
        isinstance(value, Expression | F) for value in (common or {}).values()
    ):
        return _update_from_values(queryset, values, common or {})
    assignments: dict[str, Any] = dict(common or {})
    names = {name for fields in values.values() for name in fields} - set(assignments)
    for name in sorted(names):
        field = Generation._meta.get_field(name)
        assert isinstance(field, Field)
        setting = {pk: fields[name] for pk, fields in values.items() if name in fields}
        distinct = {repr(value) for value in setting.values()}
        if len(setting) == len(values) and len(distinct) == 1:
            assignments[name] = next(iter(setting.values()))
            continue
        assignments[name] = Case(
            *[When(pk=pk, then=Value(value, output_field=field)) for pk, value in setting.items()],
            default=F(name),
            output_field=field,
        )
    return queryset.filter(pk__in=list(values)).update(**assignments)


def _field(name: str) -> Field:
    field = Generation._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def _update_from_values(
    queryset: QuerySet[Generation], values: dict[Any, dict[str, Any]], common: dict[str, Any]
) -> int:
    """PostgreSQL: ``UPDATE table SET … FROM (VALUES (…), …) AS v(…) WHERE table.id = v.id AND
    <the queryset's conditions>``, with every value a parameter."""
    connection = connections[queryset.db]
    quote = connection.ops.quote_name
    table = quote(Generation._meta.db_table)
    names = sorted({name for fields in values.values() for name in fields} - set(common))
    partial = [name for name in names if any(name not in fields for fields in values.values())]
    pk = Generation._meta.pk
    assert pk is not None
    columns = [("pk", pk.db_type(connection))]
    columns += [(name, _field(name).db_type(connection)) for name in names]
    columns += [(f"set_{name}", "boolean") for name in partial]
    rows_sql, params = [], []
    for key, fields in values.items():
        params.append(pk.get_db_prep_value(key, connection))
        for name in names:
            params.append(_field(name).get_db_prep_value(fields.get(name), connection))
        params.extend(name in fields for name in partial)
        rows_sql.append("(" + ", ".join(f"%s::{kind}" for _name, kind in columns) + ")")
    sets, set_params = [], []
    for name, value in common.items():
        field = _field(name)
        sets.append(f"{quote(field.column)} = %s")
        set_params.append(field.get_db_prep_value(value, connection))
    for name in names:
        column = quote(_field(name).column)
        if name in partial:
            sets.append(
                f"{column} = CASE WHEN v.set_{name} THEN v.{name} ELSE {table}.{column} END"
            )
        else:
            sets.append(f"{column} = v.{name}")
    compiler = queryset.query.get_compiler(using=queryset.db)
    where, where_params = compiler.compile(queryset.query.where)
    # Names are the model's own and every value a parameter.
    head = f"UPDATE {table} SET {', '.join(sets)}"  # noqa: S608
    source = f"FROM (VALUES {', '.join(rows_sql)}) AS v({', '.join(n for n, _ in columns)})"
    match = f"WHERE {table}.{quote(pk.column)} = v.pk" + (f" AND {where}" if where else "")
    sql = f"{head} {source} {match}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*set_params, *params, *where_params])
        return int(cursor.rowcount)
