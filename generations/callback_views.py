"""``POST /hooks/upstream/<token>/``: the provider says one of our generations changed.

Luma's callbacks are unsigned, so the body is never read, let alone trusted: a valid token
(``callback_tokens``) only makes that row's next poll due now, if it is in progress and not due
already, and wakes the poller. The poll then asks the provider itself, within its request
budget. Anything else is a bare 404 (an unknown token, a row not in progress says nothing either
way: the same empty 204).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from generations import callback_tokens, tasks
from generations.models import Generation, Status

MAX_BODY = 16 * 1024  # a generation object is 1-2 KB; the body is never read all the same


@csrf_exempt
@login_not_required
@require_POST
def upstream_callback(request: HttpRequest, token: str) -> HttpResponse:
    row = callback_tokens.row_for(token)
    if row is None:
        return HttpResponse(status=404)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = MAX_BODY + 1
    if length > MAX_BODY:
        return HttpResponse(status=413)
    now = timezone.now()
    made_due = Generation.objects.filter(
        Q(next_poll_at__isnull=True) | Q(next_poll_at__gt=now),
        pk=row,
        status=Status.IN_PROGRESS,
    ).update(next_poll_at=now)
    if made_due:
        tasks.wake_poller()
    return HttpResponse(status=204)
