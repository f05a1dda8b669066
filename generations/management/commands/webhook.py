"""``manage.py webhook``: outbound webhooks, without the Team page.

manage.py webhook add URL --secret S [--events completed,failed,needs_attention]
manage.py webhook list                      every webhook (never its secret)
manage.py webhook pause ID                  send nothing to it; its pending deliveries wait
manage.py webhook resume ID                 send again: what waited goes out now
manage.py webhook remove ID                 delete one, and its delivery log (pending ones dropped)
manage.py webhook deliveries [--failed]     the latest deliveries, newest first

Changes go through ``generations.actions`` (the same checks as the Team page: a private or
loopback address is refused unless WEBHOOK_ALLOW_PRIVATE=True).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generations import actions, queries
from generations.models import WebhookEvent


class Command(BaseCommand):
    help = "Add, list, pause, resume and remove outbound webhooks; show their deliveries."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="what", required=True)
        add = sub.add_parser("add", help="post signed events to URL")
        add.add_argument("url")
        add.add_argument("--secret", required=True, help="signs each body (HMAC-SHA256)")
        add.add_argument(
            "--events",
            default=",".join(WebhookEvent.values),
            help="comma-separated, among " + ", ".join(WebhookEvent.values) + " (default: all)",
        )
        sub.add_parser("list", help="every webhook")
        pause = sub.add_parser("pause", help="send nothing; pending deliveries wait")
        pause.add_argument("id", type=int)
        resume = sub.add_parser("resume", help="send again; what waited goes out now")
        resume.add_argument("id", type=int)
        remove = sub.add_parser("remove", help="delete a webhook and its deliveries")
        remove.add_argument("id", type=int)
        deliveries = sub.add_parser("deliveries", help="the latest deliveries")
        deliveries.add_argument("--failed", action="store_true", help="only those given up on")
        deliveries.add_argument("--limit", type=int, default=queries.RECENT_DELIVERIES)

    def handle(self, *args: Any, what: str, **options: Any) -> None:
        try:
            if what == "add":
                hook = actions.add_webhook(
                    None, options["url"], options["secret"], options["events"]
                )
                self.stdout.write(
                    f"Webhook {hook.pk} added: {hook.url} ({', '.join(hook.event_list)})."
                )
            elif what in ("pause", "resume"):
                hook = actions.set_webhook_active(None, options["id"], what == "resume")
                self.stdout.write(
                    f"Webhook {hook.pk} resumed: deliveries that waited go out now."
                    if hook.active
                    else f"Webhook {hook.pk} paused: nothing is sent to it, new events are not "
                    "recorded for it, and its pending deliveries wait until it is resumed."
                )
            elif what == "remove":
                actions.remove_webhook(None, options["id"])
                self.stdout.write(f"Webhook {options['id']} removed.")
            elif what == "deliveries":
                self._deliveries(options["failed"], options["limit"])
            else:
                self._list()
        except actions.ServiceError as exc:
            raise CommandError(str(exc)) from None

    def _list(self) -> None:
        hooks = queries.webhook_list()
        if not hooks:
            self.stdout.write("No webhooks. Add one: manage.py webhook add URL --secret S")
        for hook in hooks:
            state = "active" if hook.active else "paused"
            self.stdout.write(
                f"{hook.pk:>4}  {state:<6}  {hook.url}  events={','.join(hook.event_list)}"
                f"  pending={hook.pending}  failed={hook.failed}"  # type: ignore[attr-defined]
            )

    def _deliveries(self, failed_only: bool, limit: int) -> None:
        rows = queries.recent_deliveries(failed_only=failed_only, limit=limit)
        if not rows:
            self.stdout.write("No deliveries.")
        for row in rows:
            code = row.last_status_code if row.last_status_code is not None else "-"
            self.stdout.write(
                f"{row.created_at:%Y-%m-%d %H:%M:%S}  webhook={row.webhook_id}  {row.event:<28}"
                f"  {row.status:<9}  attempts={row.attempts}  last={code}"
                f"  delivery={row.delivery_id}  generation={row.generation_id}"
                + (f"  error={row.last_error}" if row.last_error else "")
            )
