"""The pages of "What came before" and "Interpolate" (issue 11 #2), beside Extend.

Only where the provider can (``capabilities.reverse_extend`` / ``interpolate``): elsewhere their
URLs are 404 and no page links to them. Like Extend, every form is a plain POST that redirects
to the new video without JavaScript; "What came before" also opens inline in a gallery card
(htmx), answered with the new card beside its source, as Extend's is. Interpolate is a page of
its own: the finished videos to pick the end from, and the prompt.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.http import reswap, retarget, trigger_client_event

from generations import actions, providers, queries, views
from generations.htmx import HtmxHttpRequest
from generations.models import Generation, Status
from generations.source_forms import BeforeForm, InterpolateForm

# How many finished videos the interpolate page offers as the end (the newest).
PICK_LIMIT = 48


def _source(request: HtmxHttpRequest, pk: uuid.UUID, capability: str) -> Generation:
    if not getattr(providers.current().capabilities, capability):
        raise Http404("The video service cannot do this.")
    query = queries.with_card_fields(Generation.objects.select_related("parent"), request.user)
    return get_object_or_404(query, pk=pk)


def _queue(
    request: HtmxHttpRequest,
    form: BeforeForm | InterpolateForm,
    make: Callable[[], Generation],
) -> Generation | HttpResponse | None:
    """Queue what ``form`` asks (``make``) under its one-time key: the new row; or the answer
    to a form sent twice; or None, with the refusal added to the form and told."""
    if form.is_valid():
        try:
            return make()
        except actions.AlreadySubmitted as replay:
            return views._already_sent(request, replay)
        except actions.KeyReused:
            form.renew_submit_key()
            form.add_error(None, views.KEY_REUSED_WORDS)
        except actions.ServiceError as exc:
            form.add_error(None, str(exc))
    reason = " ".join(str(e) for e in form.non_field_errors()) or views._field_errors(form)
    messages.error(request, f"The video was not queued: {reason}")
    return None


def _inline_ids(source: Generation) -> str:
    return f"before-{source.pk}-%s"


@require_http_methods(["GET", "POST"])
def before(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    """What came before ``pk``: GET its form (inline in a card with htmx, else a page), POST
    to queue it."""
    source = _source(request, pk, "reverse_extend")
    if refused := views._not_for_viewers(request):
        return refused
    inline = bool(request.htmx)
    ids = _inline_ids(source) if inline else "id_%s"
    if request.method == "GET":
        form = BeforeForm(parent=source, auto_id=ids)
        return _before_page(request, source, form, inline)
    form = BeforeForm(request.POST, parent=source, auto_id=ids)
    made = _queue(
        request,
        form,
        lambda: actions.reverse_extend_generation(
            source, request.user, form.to_request(), idempotency_key=form.idempotency_key()
        ),
    )
    if isinstance(made, HttpResponse):
        return made
    if made is None:
        response = _before_page(request, source, form, inline, status=400)
        if inline:
            retarget(response, f"#extend-slot-{source.pk}")
            reswap(response, "innerHTML")
        return response
    messages.success(
        request, f"Making what came before {views._prompt_label(source)} · {views._cost([made])}."
    )
    if inline:
        gen = queries.card(made.pk, request.user)
        response = render(
            request, "generations/components.html#extended", {"gen": gen, "parent": source}
        )
        trigger_client_event(response, "jobs-changed")
        return response
    return redirect("generation-detail", pk=made.pk)


def _before_page(
    request: HtmxHttpRequest,
    source: Generation,
    form: BeforeForm,
    inline: bool,
    status: int = 200,
) -> HttpResponse:
    context = {"gen": source, "form": form, "inline": inline}
    template = "generations/before.html#before-form" if inline else "generations/before.html"
    if inline and status != 200:
        status = 200  # htmx swaps only 2xx answers: the form with its errors goes in the card
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
def interpolate(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    """From ``pk`` to another finished video: GET the page to pick it, POST to queue it."""
    source = _source(request, pk, "interpolate")
    if refused := views._not_for_viewers(request):
        return refused
    if request.method == "GET":
        initial = {"end": request.GET.get("end", "")[:40]}
        return _interpolate_page(request, source, InterpolateForm(parent=source, initial=initial))
    form = InterpolateForm(request.POST, parent=source)

    def make() -> Generation:
        assert form.end_video is not None  # (clean_end found it)
        return actions.interpolate_generations(
            source,
            form.end_video,
            request.user,
            form.to_request(),
            idempotency_key=form.idempotency_key(),
        )

    made = _queue(request, form, make)
    if isinstance(made, HttpResponse):
        return made
    if made is None:
        return _interpolate_page(request, source, form, status=400)
    messages.success(
        request, f"Interpolating from {views._prompt_label(source)} · {views._cost([made])}."
    )
    return redirect("generation-detail", pk=made.pk)


def _interpolate_page(
    request: HtmxHttpRequest, source: Generation, form: InterpolateForm, status: int = 200
) -> HttpResponse:
    choices = list(
        Generation.objects.filter(status=Status.COMPLETED)
        .exclude(pk=source.pk)
        .exclude(remote_id="")
        .exclude(remote_id__isnull=True)
        .select_related("created_by")
        .order_by("-completed_at", "-pk")[:PICK_LIMIT]
    )
    chosen = str(form["end"].value() or "")
    context: dict[str, Any] = {
        "gen": source,
        "form": form,
        "choices": choices,
        "chosen": chosen,
        "pick_limit": PICK_LIMIT,
    }
    return render(request, "generations/interpolate.html", context, status=status)
