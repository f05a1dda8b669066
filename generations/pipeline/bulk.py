"""Many rows, each with its own values, changed in one UPDATE.

``update_each`` writes ``{pk: {field: value}}`` as one statement: a field every row sets to the
same value is a plain assignment, one that differs is a ``CASE WHEN id = … THEN … ELSE field
END`` (PostgreSQL and SQLite alike). The queryset's own conditions (still leased, still in
progress) apply to every row, so a row another worker took meanwhile is left alone, as the
one-row updates did.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Case, F, Field, QuerySet, Value, When

from generations.models import Generation


def update_each(
    queryset: QuerySet[Generation],
    values: dict[Any, dict[str, Any]],
    common: dict[str, Any] | None = None,
) -> int:
    """One UPDATE of the rows ``values`` names (within ``queryset``); returns how many matched."""
    if not values:
        return 0
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
