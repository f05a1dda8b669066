"""`manage.py runsimulator [--port 8001] [--dialect umamiai|luma] [flags]`: run the upstream API
simulator (demo mode); ``--dialect luma`` speaks Luma's own API instead of UmamiAI's."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from simulator.server import Config, add_arguments, serve


class Command(BaseCommand):
    help = (
        "Run a local stand-in for the upstream API (UmamiAI's, or Luma's own with --dialect luma), "
        "with optional fault injection."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: object, **options: object) -> None:
        try:
            config = Config.from_options(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        serve(config)
