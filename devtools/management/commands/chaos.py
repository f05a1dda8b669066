"""``manage.py chaos``: the chaos run at full size (see devtools/chaos.py).

It writes rows into the configured database: point DATABASE_URL at a scratch database
(``createdb lumaweb_chaos``; ``DATABASE_URL=postgres:///lumaweb_chaos manage.py migrate``).
With ``--postgres-restarts N`` it runs on a PostgreSQL server of its own instead (initdb on a
free port, migrated, removed at the end; needs the server's binaries), which it restarts N times.
"""

from django.core.management.base import BaseCommand, CommandError

from devtools.chaos import ChaosRun
from generations.models import Generation


class Command(BaseCommand):
    help = "Run N generations through real workers while killing them; print the ledger check."

    def add_arguments(self, parser):
        parser.add_argument("-n", type=int, default=300, help="generations (default 300)")
        parser.add_argument("--kills", type=int, default=5)
        parser.add_argument("--redis-restarts", type=int, default=2)
        parser.add_argument("--beat-restarts", type=int, default=1)
        parser.add_argument(
            "--postgres-restarts",
            type=int,
            default=0,
            help="stop PostgreSQL for a few seconds and start it again this many times, the "
            "first while a POST is out; the run then uses a server of its own (default 0)",
        )
        parser.add_argument("--timeout", type=float, default=1200)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--max-in-flight",
            type=int,
            default=5,
            help="LUMA_MAX_IN_FLIGHT for the run (default 5; 0: no limit)",
        )
        parser.add_argument(
            "--submits-per-minute",
            type=int,
            default=60,
            help="LUMA_MAX_SUBMITS_PER_MINUTE for the run (default 60; 0: no limit)",
        )
        parser.add_argument(
            "--credits-window",
            type=float,
            default=20,
            help="seconds without credits part-way through (default 20; 0: none)",
        )
        parser.add_argument(
            "--upstream-creates-per-minute",
            type=int,
            default=0,
            help="the simulator refuses (429, Retry-After) creates over this many a minute, as "
            "Luma's tiers do (default 0: no limit; Luma's entry tier: 20)",
        )
        parser.add_argument(
            "--upstream-running",
            type=int,
            default=0,
            help="the simulator refuses (429) creates over this many running at once "
            "(default 0: no limit; Luma's entry tier: 10)",
        )
        parser.add_argument(
            "--provider",
            choices=("umamiai", "luma"),
            default="umamiai",
            help="the API the workers talk to: umamiai (default) or luma (Luma's official API, "
            "the simulator's luma dialect: options, reverse extensions and interpolations, "
            "POSTs of unknown outcome decided by Luma's list, polling within a budget)",
        )
        parser.add_argument(
            "--poll-budget",
            type=int,
            default=4,
            help="LUMA_POLL_MAX_REQUESTS for a luma run: GETs per poll interval (default 4)",
        )
        parser.add_argument(
            "--allow-existing",
            action="store_true",
            help="run even though the database already holds generations",
        )

    def handle(self, *args, **opts):
        own_database = opts["postgres_restarts"] > 0
        if not own_database and Generation.objects.exists() and not opts["allow_existing"]:
            raise CommandError(
                "This database already holds generations; use a scratch database "
                "(or --allow-existing)."
            )
        run = ChaosRun(
            opts["n"],
            kills=opts["kills"],
            redis_restarts=opts["redis_restarts"],
            beat_restarts=opts["beat_restarts"],
            postgres_restarts=opts["postgres_restarts"],
            timeout=opts["timeout"],
            seed=opts["seed"],
            max_in_flight=opts["max_in_flight"],
            submits_per_minute=opts["submits_per_minute"],
            credits_window=opts["credits_window"],
            upstream_creates_per_minute=opts["upstream_creates_per_minute"],
            upstream_running=opts["upstream_running"],
            provider=opts["provider"],
            poll_budget=opts["poll_budget"],
            say=self.stdout.write,
        )
        report = run.run()
        self.stdout.write(report.table())
        if not report.ok:
            raise CommandError(
                "the chaos run found lost jobs, second POSTs, bad copies, the capacity "
                "exceeded, a hold that did not hold, a wrong request body, polling over "
                "its budget or answers left in the journal"
            )
