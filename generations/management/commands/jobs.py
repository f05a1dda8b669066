"""``manage.py jobs``: see and repair jobs that need a person.

manage.py jobs                      list needs-attention, stuck, timed-out (last 7 days) and
                                    uncopied jobs
manage.py jobs retry ID [--yes]     send it again; --yes is required when an earlier POST may have
                                    been charged (needs attention, or failed/cancelled after one)
manage.py jobs fail ID              mark a needs-attention job failed
manage.py jobs cancel ID            cancel a queued job
manage.py jobs check-again ID       poll a job that timed out once more (no new request, no charge)
manage.py jobs copy-again ID        copy a finished video again whose local copy was given up on
manage.py jobs sweep                run the sweeper now (requeue lost wake-ups, unstick rows)
manage.py jobs hold                 show the account hold (why, since when, how many jobs wait)
manage.py jobs resume               lift the account hold now: every waiting job is sent
manage.py jobs cancel-waiting       cancel every job waiting to be sent (nothing paid for them)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from generations import actions, queries, tasks
from generations.models import Generation, Status, capacity_limited, slots


class Command(BaseCommand):
    help = "List jobs that need attention or look stuck, and resolve them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "action",
            nargs="?",
            default="list",
            choices=[
                "list",
                "retry",
                "fail",
                "cancel",
                "check-again",
                "copy-again",
                "sweep",
                "hold",
                "resume",
                "cancel-waiting",
            ],
        )
        parser.add_argument("ids", nargs="*", help="generation ids (uuid)")
        parser.add_argument(
            "--yes",
            action="store_true",
            help="confirm a retry that may pay a second time (a job whose earlier request may "
            "have reached the service)",
        )

    def handle(self, *args: Any, action: str, ids: list[str], yes: bool, **options: Any) -> None:
        if action == "list":
            return self._list()
        if action == "sweep":
            self.stdout.write(str(tasks.sweep()))
            return None
        if action == "hold":
            return self._hold()
        if action == "resume":
            lifted = actions.resume_account(None)
            self.stdout.write("Resumed: the waiting jobs are being sent." if lifted else _NO_HOLD)
            return None
        if action == "cancel-waiting":
            self.stdout.write(f"Cancelled {actions.cancel_waiting(None)} waiting jobs.")
            return None
        if not ids:
            raise CommandError(f"'jobs {action}' needs at least one generation id")
        for pk in ids:
            gen = Generation.objects.filter(pk=pk).first() if _is_uuid(pk) else None
            if gen is None:
                raise CommandError(f"no generation {pk!r}")
            try:
                if action == "retry":
                    if gen.retry_may_pay_twice and not yes:
                        raise CommandError(
                            f"{pk} may already have started upstream; retrying may pay twice. "
                            "Add --yes to confirm."
                        )
                    actions.retry_generation(gen, confirm_second_charge=yes, via="command")
                elif action == "fail":
                    actions.mark_failed(gen, note="marked failed from the command line")
                elif action == "check-again":
                    actions.check_again(gen)
                elif action == "copy-again":
                    actions.copy_again(gen)
                else:
                    actions.cancel_generation(gen)
            except actions.ServiceError as exc:
                raise CommandError(f"{pk}: {exc}") from None
            self.stdout.write(f"{pk}: {action} done ({Generation.objects.get(pk=pk).status})")
        return None

    def _hold(self) -> None:
        hold = queries.account_hold()
        if hold is None:
            self.stdout.write(_NO_HOLD)
            return
        self.stdout.write(
            f"On hold since {hold.since:%Y-%m-%d %H:%M:%S %Z}: {hold.cause_label} "
            f"({hold.status_code or '-'}: {hold.reason or 'no message'})\n"
            f"{hold.waiting} jobs wait; next try at {hold.retry_at:%H:%M:%S %Z}.\n"
            "'jobs resume' sends them now; 'jobs cancel-waiting' cancels them."
        )

    def _list(self) -> None:
        now = timezone.now()
        hold = queries.account_hold()
        if hold is not None:
            self.stdout.write(
                self.style.WARNING(
                    f"account on hold: {hold.cause_label}; {hold.waiting} jobs wait "
                    "(see 'jobs hold')"
                )
            )
        every = Generation.objects
        recent_timeouts = every.timed_out().filter(status_changed_at__gte=now - timedelta(days=7))
        groups = [
            ("needs attention", every.filter(status=Status.NEEDS_ATTENTION)),
            ("stuck submitting", every.stale_submitting(now)),
            ("in progress, not polled lately", every.not_polled_lately(now)),
            ("finished without a local copy ('jobs copy-again ID')", every.copy_given_up()),
            ("timed out waiting for the service ('jobs check-again ID')", recent_timeouts),
        ]
        if capacity_limited():
            # Queued rows wait for their turn, and the sweeper wakes them in it: not a problem.
            state = slots(now)
            waiting = sum(w.waiting for w in state.line)
            if waiting:
                self.stdout.write(f"{waiting} waiting for a free slot ({state.room} free now)")
        else:
            groups.insert(2, ("queued but not taken", every.waiting_for_a_worker(now)))
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


_NO_HOLD = "The account is not on hold."


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
