"""Live pages at 100,000 rows (issue 12, point 2).

- ``gen_status_changed``: (status_changed_at, id), newest first, for the dashboard's "Recently
  finished" and "Failed" lists and their "Older" pages (a sort of 92,000 rows without it).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0018_money_units"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(fields=["-status_changed_at", "-id"], name="gen_status_changed"),
        ),
    ]
