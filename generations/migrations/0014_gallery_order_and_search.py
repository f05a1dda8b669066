"""The gallery's orders and search (issue 10, point 1).

- ``gen_status_completed_id`` (status, completed_at DESC, id DESC) replaces
  ``gen_status_completed``: every gallery order ends in (completed_at, id), the keyset pages
  read it, and the live gallery's "anything new?" poll reads its first row.
- On PostgreSQL only, a GIN index on the prompts' text-search document (both prompts, the
  'simple' configuration), the expression ``queries.prompt_search_vector`` filters on. SQLite
  searches by substring and gets no such index: the operation does nothing there.
"""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations, models

SEARCH_INDEX = "gen_prompt_search"


def _search_index() -> GinIndex:
    # Written out here (a migration is frozen), the same as queries.prompt_search_vector.
    return GinIndex(SearchVector("user_prompt", "prompt", config="simple"), name=SEARCH_INDEX)


def add_search_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(apps.get_model("generations", "Generation"), _search_index())


def remove_search_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("generations", "Generation"), _search_index())


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0013_boards_and_share_links"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="generation",
            name="gen_status_completed",
        ),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(
                fields=["status", "-completed_at", "-id"], name="gen_status_completed_id"
            ),
        ),
        migrations.RunPython(add_search_index, remove_search_index),
    ]
