from django.db import migrations, models


class Migration(migrations.Migration):
    """A deleted row's kept cost keeps that row's price per POST (0: a row older than per-row
    pricing, counted at the legacy price, like a live one: see generations/money.py)."""

    dependencies = [
        ("generations", "0017_provider_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="deletedspending",
            name="unit_cost",
            field=models.PositiveBigIntegerField(
                default=0,
                help_text=(
                    "What one of its POSTs cost, in the provider's unit (0: before per-row prices)"
                ),
            ),
        ),
    ]
