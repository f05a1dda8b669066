"""Issue a personal API token for a user: ``manage.py createapitoken alice --name ci``."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from generations.models import ApiToken


class Command(BaseCommand):
    help = "Create a personal API token (shown once) for scripts using /api/v1."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="script")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        _, key = ApiToken.issue(user, name)
        self.stdout.write(key)
