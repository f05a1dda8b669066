"""Live pages at 100,000 rows (issue 12, point 2).

- ``gen_status_changed``: (status_changed_at, id), newest first, for the dashboard's "Recently
  finished" and "Failed" lists and their "Older" pages (a sort of 92,000 rows without it).
- On PostgreSQL only, the prompt search on trigrams (``pg_trgm``): GIN indexes on
  ``UPPER(user_prompt)`` and ``UPPER(prompt)``, the expressions Django's ``icontains`` compares
  (``queries.search``). They replace 0014's full-text index, which the planner left aside for
  the gallery's order (a rare word tested every finished row). SQLite searches by substring
  without an index: the operations do nothing there.
"""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import TrigramExtension
from django.contrib.postgres.search import SearchVector
from django.db import migrations, models

TRIGRAM_INDEXES = {"gen_user_prompt_trgm": "user_prompt", "gen_prompt_trgm": "prompt"}
OLD_SEARCH_INDEX = "gen_prompt_search"


def _add_trigram(schema_editor, table: str, name: str, column: str) -> None:
    # Written as SQL: Django parenthesises an OpClass on an expression (a syntax error).
    quote = schema_editor.quote_name
    schema_editor.execute(
        f"CREATE INDEX {quote(name)} ON {quote(table)} USING gin (UPPER({quote(column)}) gin_trgm_ops)"
    )


def _full_text() -> GinIndex:  # 0014's, written out again (a migration is frozen)
    return GinIndex(
        SearchVector("user_prompt", "prompt", config="simple"), name=OLD_SEARCH_INDEX
    )


def to_trigrams(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("generations", "Generation")
    for name, column in TRIGRAM_INDEXES.items():
        _add_trigram(schema_editor, model._meta.db_table, name, column)
    schema_editor.remove_index(model, _full_text())


def to_full_text(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("generations", "Generation")
    schema_editor.add_index(model, _full_text())
    for name in TRIGRAM_INDEXES:
        schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0018_money_units"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(fields=["-status_changed_at", "-id"], name="gen_status_changed"),
        ),
        TrigramExtension(),  # CREATE EXTENSION IF NOT EXISTS pg_trgm (PostgreSQL only)
        migrations.RunPython(to_trigrams, to_full_text),
    ]
