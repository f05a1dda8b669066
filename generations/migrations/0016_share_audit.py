# Share links in the audit log: making one and revoking (security review, issue 10 point 6).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("generations", "0015_hooks_delivery_wakeups_and_completion"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditentry",
            name="action",
            field=models.CharField(
                choices=[
                    ("spent", "Queued a paid job"),
                    ("second_charge", "Authorised a possible second charge"),
                    ("role", "Changed a role"),
                    ("budget", "Changed a person's budget"),
                    ("team_budget", "Changed the team's budget"),
                    ("member_added", "Added a member"),
                    ("member_deactivated", "Deactivated a member"),
                    ("member_reactivated", "Reactivated a member"),
                    ("hold_began", "Account put on hold"),
                    ("hold_lifted", "Account hold lifted"),
                    ("cancel_waiting", "Cancelled the waiting jobs"),
                    ("deleted", "Deleted a generation"),
                    ("share_made", "Made a public share link"),
                    ("share_revoked", "Revoked public share links"),
                ],
                db_index=True,
                max_length=24,
            ),
        ),
    ]
