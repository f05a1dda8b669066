"""``manage.py jobs``: see and repair jobs that need a person.

manage.py jobs                      list needs-attention, stuck and failed-recently jobs
manage.py jobs retry ID [--yes]     send it again (may pay twice for a needs-attention job)
manage.py jobs fail ID              mark a needs-attention job failed
manage.py jobs cancel ID            cancel a queued job
manage.py jobs sweep                run the sweeper now (requeue lost wake-ups, unstick rows)
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from generations import services
from generations.models import Generation, Status


class Command(BaseCommand):
    help = "List jobs that need attention or look stuck, and resolve them."

    def add_arguments(self, parser):
        parser.add_argument(
            "action",
            nargs="?",
            default="list",
            choices=["list", "retry", "fail", "cancel", "sweep"],
        )
        parser.add_argument("ids", nargs="*", help="generation ids (uuid)")
        parser.add_argument(
            "--yes", action="store_true", help="confirm a retry that may pay a second time"
        )

    def handle(self, *args, action, ids, yes, **options):
        if action == "list":
            return self._list()
        if action == "sweep":
            self.stdout.write(str(vars(services.sweep())))
            return None
        if not ids:
            raise CommandError(f"'jobs {action}' needs at least one generation id")
        for pk in ids:
            gen = Generation.objects.filter(pk=pk).first() if _is_uuid(pk) else None
            if gen is None:
                raise CommandError(f"no generation {pk!r}")
            try:
                if action == "retry":
                    if gen.status == Status.NEEDS_ATTENTION and not yes:
                        raise CommandError(
                            f"{pk} may already have started upstream; retrying may pay twice. "
                            "Add --yes to confirm."
                        )
                    services.retry_generation(gen)
                elif action == "fail":
                    services.mark_failed(gen, note="marked failed from the command line")
                else:
                    services.cancel_generation(gen)
            except services.ServiceError as exc:
                raise CommandError(f"{pk}: {exc}") from None
            self.stdout.write(f"{pk}: {action} done ({Generation.objects.get(pk=pk).status})")
        return None

    def _list(self) -> None:
        now = timezone.now()
        stale = now - timedelta(seconds=settings.LUMA_SUBMIT_STALE_AFTER)
        overdue = now - timedelta(seconds=max(60.0, settings.LUMA_POLL_INTERVAL * 12))
        groups = [
            ("needs attention", Generation.objects.filter(status=Status.NEEDS_ATTENTION)),
            (
                "stuck submitting",
                Generation.objects.filter(status=Status.SUBMITTING, status_changed_at__lt=stale),
            ),
            (
                "queued but not taken",
                Generation.objects.filter(status=Status.QUEUED, status_changed_at__lt=stale).filter(
                    Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=now)
                ),
            ),
            (
                "in progress, not polled lately",
                Generation.objects.filter(status=Status.IN_PROGRESS, next_poll_at__lt=overdue),
            ),
            (
                "finished without a local copy",
                Generation.objects.filter(
                    status=Status.COMPLETED, video_file="", assets_next_at__isnull=True
                ),
            ),
        ]
        found = False
        for title, query in groups:
            rows = list(query.select_related("created_by").order_by("status_changed_at")[:200])
            if not rows:
                continue
            found = True
            self.stdout.write(self.style.MIGRATE_HEADING(f"{title} ({len(rows)})"))
            for gen in rows:
                age = now - gen.status_changed_at
                who = gen.created_by.get_username() if gen.created_by else "-"
                self.stdout.write(
                    f"  {gen.pk}  {who:<12} {str(age).split('.')[0]:>9} ago  "
                    f"{gen.user_prompt[:50]!r}  {gen.error[:80]}"
                )
        if not found:
            self.stdout.write("Nothing needs attention.")


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
