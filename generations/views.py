"""The studio's pages. Views translate HTTP into service calls and render templates.

One template per page; htmx requests get a named partial of the same template
(``page.html#partial``) chosen by the ``HX-Target`` they aim at (``render_for_target``). Every
action is a plain POST that redirects when JavaScript is off; with htmx it answers the fragment
to swap, and the middleware adds the toasts (``generations.htmx``). Polls answer 204 when
nothing changed and 286 when nothing will (``answer_poll``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.functional import SimpleLazyObject
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import (
    HTMX_STOP_POLLING,
    HttpResponseClientRedirect,
    reswap,
    retarget,
    trigger_client_event,
)

from generations import (
    actions,
    boards,
    chains,
    livestamp,
    money,
    providers,
    queries,
    webhooks,
)
from generations.forms import ASPECT_HINTS, MAX_BATCH, CreateForm, ExtendForm, frame_prefill
from generations.htmx import HtmxHttpRequest, answer_poll, htmx_target, next_url, render_for_target
from generations.inputs import GenerationRequest
from generations.models import ASPECT_RATIOS, Board, Generation, WebhookEvent
from generations.source_forms import BeforeForm
from generations.templatetags.studio import short_prompt, thousands

# The most cards one grid watch asks about: ~55 characters each in the query string, and
# gunicorn refuses a request line over 4 KiB. (A gallery rarely has more than a few changing.)
MAX_WATCHED_CARDS = 60


# --- helpers ------------------------------------------------------------------------------------


def _prompt_label(gen: Generation) -> str:
    return f"“{short_prompt(gen.user_prompt, 50)}”"


def _cost(made: list[Generation]) -> str:
    """What these queued rows cost together, in words ("1,000,000 tokens")."""
    return f"{thousands(sum(money.row_price(gen) for gen in made))} {money.unit()}"


# --- gallery ------------------------------------------------------------------------------------
# An open gallery asks every LIVE_EVERY seconds whether a video finished (answered 204 while
# none did, at two indexed queries), every 2 s while one of its cards is changing.
LIVE_EVERY = 10


def _changing(gens: Iterable[Generation]) -> bool:
    return any(not gen.is_settled for gen in gens)


@dataclass
class LiveGallery:
    """What an open gallery page knows, kept in hidden inputs (#grid-live) that its watcher
    sends with every poll, and that the answers bring up to date (out of band).

    ``mode``: "top" (newest first, the first page: new videos are slotted in at the top) or
    "count" (another order or a later page: the grid stays as it is, a notice counts them).
    ``seen``: the newest finished video (anyone's, ``queries.newest_finished``) when the page
    last heard; the poll is "unchanged" while it is still the newest. ``since``: in "count"
    mode, the newest when the page was drawn (what is counted comes after it); ``told``: the
    count the notice shows. ``empty``: the page shows the "no videos" state instead of a grid.
    """

    filters: queries.GalleryFilters
    mode: str = "top"
    seen: str = ""
    since: str = ""
    told: int = 0
    empty: bool = False

    @classmethod
    def from_query(cls, params: QueryDict) -> LiveGallery | None:
        """The state a poll sends back; None when it sends none (a page that only watches its
        changing cards). Lenient: an odd value is read as the least it could mean."""
        mode = params.get("live", "")
        if mode not in ("top", "count"):
            return None
        told = params.get("told", "")
        return cls(
            filters=queries.GalleryFilters.from_query(params),
            mode=mode,
            seen=params.get("seen", "")[:80],
            since=params.get("since", "")[:80],
            told=int(told) if re.fullmatch(r"[0-9]{1,5}", told) else 0,  # ("²".isdigit())
            empty=params.get("empty") == "1",
        )

    @property
    def inputs(self) -> list[tuple[str, str]]:
        values = {"live": self.mode, "seen": self.seen, **self.filters.values()}
        if self.mode == "count":
            values.update(since=self.since, told=str(self.told))
        if self.empty:
            values["empty"] = "1"
        return list(values.items())

    @property
    def show_query(self) -> str:
        """The notice's "Show": the same filters, newest first, from the top."""
        return self.filters.query_string(sort="")


@require_GET
def gallery(request: HtmxHttpRequest) -> HttpResponse:
    filters = queries.GalleryFilters.from_query(request.GET)
    live = htmx_target(request) != "more"  # the page, or its results: the live state with them
    # The newest finished video before the cards: one finishing between the two reads is then
    # newer than what the page remembers and comes with the next poll (had the page read it
    # after its cards, it would be on neither). One it shows already is not slotted in twice
    # (gallery.js).
    seen = queries.newest_finished() if live else ""
    page = queries.gallery_page(request.user, filters)
    context: dict[str, Any] = {
        "filters": filters,
        "page": page,
        "next_query": filters.query_string(after=page.next_cursor) if page.next_cursor else "",
        "aspect_ratios": ASPECT_RATIOS,
        "sorts": queries.SORTS,
        "watching": _changing(page.items),  # a card still changing: the grid's watcher hurries
        "live_every": LIVE_EVERY,
        "announce_results": htmx_target(request) == "gallery-results",  # a filter change: how many
    }
    if live:
        top = filters.newest_first and filters.after is None
        context["live"] = LiveGallery(
            filters=filters,
            mode="top" if top else "count",
            seen=seen,
            since="" if top else seen,
            empty=not page.items,
        )
    return render_for_target(
        request,
        "generations/gallery.html",
        context,
        {"more": "more", "gallery-results": "results"},
    )


def _watched(values: list[str]) -> dict[uuid.UUID, str]:
    """``<id>.<live version>`` pairs sent by the grid's watcher (odd ones are skipped)."""
    watched: dict[uuid.UUID, str] = {}
    for value in values[:MAX_WATCHED_CARDS]:
        pk, _, version = value.partition(".")
        try:
            watched[uuid.UUID(pk)] = version
        except ValueError:
            continue
    return watched


@require_GET
def cards(request: HtmxHttpRequest) -> HttpResponse:
    """The gallery's one poll (components.html#watcher), for its changing cards and, on the
    gallery, for new videos: 204 while nothing changed; else the changed cards out of band
    (deleted ones removed), new videos (``_live_answer``) and a fresh watcher; on a page that
    only watches its cards (a board's, ``?board=``), 286 once none of them will change any
    more. A fixed number of queries, whatever the number of cards or videos."""
    if not request.htmx:
        return redirect("gallery")
    watched = _watched(request.GET.getlist("watch"))
    rows = {
        gen.pk: gen
        for gen in queries.with_card_fields(Generation.objects.filter(pk__in=watched), request.user)
    }
    now = {pk: rows[pk].live_version if pk in rows else "gone" for pk in watched}
    context = {
        "changed": [rows[pk] for pk in watched if pk in rows and now[pk] != watched[pk]],
        "gone": [pk for pk in watched if pk not in rows],
        "watching": _changing(rows.values()),
    }
    live = LiveGallery.from_query(request.GET)
    if live is None:  # a page that only watches its cards: a board's (?board=), or a later one

        def answer() -> HttpResponse:
            context["on_board"] = _watching_board(request)
            return render(request, "generations/components.html#watch-answer", context)

        return answer_poll(
            request,
            version=" ".join(now.values()),
            client_version=" ".join(watched.values()),
            settled=not context["watching"],
            fragment=answer,
        )
    newest = queries.newest_finished()
    hurrying = request.GET.get("fast") == "1"
    return answer_poll(
        request,
        version=" ".join([newest, str(context["watching"]), *now.values()]),
        client_version=" ".join([live.seen, str(hurrying), *watched.values()]),
        settled=False,  # new videos may come at any time
        fragment=lambda: _live_answer(request, live, newest, set(watched), context),
    )


def _watching_board(request: HttpRequest) -> Board | None:
    """The board whose page sent the poll (``?board=``), for its cards' own tools; None for
    anything else, or a board this person does not see (its cards then show no board tools)."""
    pk = request.GET.get("board", "")
    if not re.fullmatch(r"[0-9]{1,18}", pk):
        return None
    try:
        return boards.get_visible(request.user, int(pk))
    except Board.DoesNotExist:
        return None


def _live_answer(
    request: HtmxHttpRequest,
    live: LiveGallery,
    newest: str,
    on_page: set[uuid.UUID],
    context: dict[str, Any],
) -> HttpResponse:
    """A gallery's poll answer when something changed: its changed cards, and what finished
    since it last heard (``live.seen``): on the newest-first first page, the new cards to slot
    in at the top (not the ones it shows already: an extension it watches is replaced where it
    is); elsewhere, or when more came than a page holds, the notice's count."""
    fresh: list[Any] = []
    news = False
    state = replace(live, seen=newest)
    if newest != live.seen:
        since, until = queries.decode_moment(live.seen), queries.decode_moment(newest)
        if live.mode == "top":
            fresh = queries.finished_since(
                request.user, live.filters, since, until, leave_out=on_page
            )
            if len(fresh) > queries.GALLERY_PAGE_SIZE:  # too many to slot in: count them
                fresh, state.mode, state.since = [], "count", live.seen
        if state.mode == "count":
            counted = queries.decode_moment(state.since)
            state.told = queries.count_finished_since(request.user, live.filters, counted, until)
        news = bool(fresh) or state.told != live.told
        state.empty = live.empty and not fresh
    context.update(
        live=state,
        fresh=fresh,
        news=news,
        was_empty=live.empty and bool(fresh),
        watching=context["watching"] or _changing(fresh),
        live_every=LIVE_EVERY,
        more_than=queries.MAX_NEW_COUNT,
    )
    return render(request, "generations/gallery_live.html#answer", context)


@require_POST
def like(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    gen = get_object_or_404(Generation, pk=pk)
    if not request.user.is_authenticated:  # LoginRequiredMiddleware already sent strangers away
        return redirect("login")
    liked = actions.toggle_like(gen, request.user)
    if request.htmx:
        gen = queries.card(pk, request.user)
        return render(request, "generations/components.html#like", {"gen": gen})
    messages.success(request, "Liked." if liked else "Like removed.")
    return redirect(next_url(request, reverse("generation-detail", args=[pk])))


def _already_sent(request: HtmxHttpRequest, replay: actions.AlreadySubmitted) -> HttpResponse:
    """A form posted again with its used one-time key (a double-click, a reload, Back and
    submit): nothing new was queued; go to what the first post made, and say so."""
    first = replay.generation
    if len(replay.generations) > 1:
        messages.info(
            request,
            f"This form had already been sent: nothing new was queued. Its "
            f"{len(replay.generations)} videos are here.",
        )
        target = reverse("jobs")
    elif first is None:
        messages.info(
            request,
            "This form had already been sent, and the video it made has been deleted since. "
            "Nothing new was queued.",
        )
        target = reverse("gallery")
    else:
        messages.info(
            request,
            f"This form had already been sent: nothing new was queued. Here is "
            f"{_prompt_label(first)}.",
        )
        target = reverse("generation-detail", args=[first.pk])
    return HttpResponseClientRedirect(target) if request.htmx else redirect(target)


KEY_REUSED_WORDS = (
    "This form had already been sent with other settings; nothing new was queued. "
    "Check the form and press the button again to queue this one."
)


# --- create -------------------------------------------------------------------------------------
def _prefill(request: HtmxHttpRequest) -> dict[str, Any]:
    """``?from=<uuid>``: what an earlier generation asked for ("generate again"), including
    the keyframes uploaded for it (kept unless replaced)."""
    source = request.GET.get("from", "")
    if not source:
        return {}
    try:
        gen = Generation.objects.filter(pk=uuid.UUID(source)).first()
    except ValueError:
        gen = None
    if gen is None:
        messages.warning(request, "That generation was not found; starting from a blank form.")
        return {}
    return {**GenerationRequest.from_row(gen).form_initial(), "keyframes_from": gen.pk}


def _frame_prefill(request: HtmxHttpRequest) -> dict[str, str]:
    """``?frame_of=<uuid>&frame=<n>&use=start|end``: a frame of a finished video as the start
    or end keyframe (the detail page's "Use a frame"); a frame that cannot be used is said."""
    initial, warning = frame_prefill(request.GET)
    if warning:
        messages.warning(request, warning)
    return initial


def _not_for_viewers(request: HtmxHttpRequest) -> HttpResponse | None:
    """A viewer asking for a page that spends (the create page, an extend form) is told why,
    with a 403, instead of being offered a form whose submit would be refused."""
    try:
        actions.check_can_spend(request.user)
    except actions.NotAllowed as exc:
        return render(request, "403.html", {"reason": str(exc)}, status=403)
    return None


@require_http_methods(["GET", "POST"])
def create(request: HtmxHttpRequest) -> HttpResponse:
    if refused := _not_for_viewers(request):
        return refused
    status = 200
    if request.method == "POST":
        form = CreateForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                made = actions.create_generations(
                    request.user, form.to_requests(), idempotency_key=form.idempotency_key()
                )
            except actions.AlreadySubmitted as replay:
                return _already_sent(request, replay)
            except actions.KeyReused:
                form.renew_submit_key()
                form.add_error(None, KEY_REUSED_WORDS)
                messages.warning(request, "The video was not queued: see the form.")
                status = 409
            except actions.ServiceError as exc:
                # Over budget (402), or a refusal: the form stays filled in, with the reason.
                form.add_error(None, str(exc))
                messages.error(request, str(exc))
                status = 402 if isinstance(exc, actions.OverBudget) else 409
            else:
                if len(made) > 1:
                    # A batch: its jobs, side by side, on the jobs page.
                    messages.success(request, f"Queued {len(made)} videos · {_cost(made)}.")
                    return redirect("jobs")
                messages.success(request, f"Queued {_prompt_label(made[0])} · {_cost(made[:1])}.")
                return redirect("generation-detail", pk=made[0].pk)
        else:
            status = 400
            # A refusal of the whole form (a batch over 20) has no field to highlight: say it.
            only_whole = set(form.errors) == {NON_FIELD_ERRORS}
            messages.error(
                request,
                " ".join(str(error) for error in form.non_field_errors())
                if only_whole
                else "Please fix the highlighted fields.",
            )
    else:
        form = CreateForm(initial={**_prefill(request), **_frame_prefill(request)})
    # The cost line: what is left this month, and what one video of the chosen options costs.
    allowance = money.allowance(request.user, cost=money.cost_of_options(form.data or form.initial))
    jobs = form.planned_jobs()  # app.js counts the same way as the person types
    context = {
        "form": form,
        "max_batch": MAX_BATCH,
        "batch_mode": form.batch_mode(),
        "jobs": jobs,
        "cost_total": allowance.cost * jobs,
        "short_of": allowance.short_of(max(jobs, 1)),
        "aspect_hints": ASPECT_HINTS,
        "uploads_allowed": bool(settings.PUBLIC_BASE_URL or settings.LUMA_DEMO_MODE),
        "allowance": allowance,
        "price_table": money.price_table(),  # None when the options do not change the price
    }
    return render(request, "generations/new.html", context, status=status)


# --- detail and extend --------------------------------------------------------------------------
def _detail_context(
    request: HtmxHttpRequest, gen: Generation, extend_form: ExtendForm | None = None
) -> dict[str, Any]:
    return {
        "gen": gen,
        "events": list(gen.events.all()),
        # read only by the whole page, not by its polls; one query however deep the tree
        "chain_tree": SimpleLazyObject(lambda: chains.tree(gen)),
        "extend_form": extend_form or ExtendForm(parent=gen),
        # issue 11 #2: only where the provider can make what came before a video
        "before_form": BeforeForm(parent=gen)
        if providers.current().capabilities.reverse_extend
        else None,
        "version": gen.live_version,
    }


@require_GET
def detail(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    query = queries.with_card_fields(Generation.objects.select_related("parent"), request.user)
    gen = get_object_or_404(query, pk=pk)

    def page() -> HttpResponse:
        context = _detail_context(request, gen)
        return render_for_target(
            request,
            "generations/detail.html",
            context,
            {"live": "poll", "viewer-body": "viewer"},  # the gallery's viewer: no page around it
        )

    if htmx_target(request) == "live":
        return answer_poll(request, version=gen.live_version, settled=gen.is_settled, fragment=page)
    return page()


@require_http_methods(["GET", "POST"])
def extend(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    parent = get_object_or_404(
        queries.with_card_fields(Generation.objects.select_related("parent"), request.user), pk=pk
    )
    if refused := _not_for_viewers(request):
        return refused
    if request.method == "GET":
        if not request.htmx:
            return redirect(reverse("generation-detail", args=[pk]) + "#extend")
        form = ExtendForm(parent=parent, auto_id=_inline_ids(parent))
        context = {"gen": parent, "form": form, "inline": True}
        return render(request, "generations/components.html#extend-form", context)

    ids = _inline_ids(parent) if request.htmx else "id_%s"
    form = ExtendForm(request.POST, request.FILES, parent=parent, auto_id=ids)
    child = None
    if form.is_valid():
        try:
            child = actions.extend_generation(
                parent, request.user, form.to_request(), idempotency_key=form.idempotency_key()
            )
        except actions.AlreadySubmitted as replay:
            return _already_sent(request, replay)
        except actions.KeyReused:
            form.renew_submit_key()
            form.add_error(None, KEY_REUSED_WORDS)
        except actions.ServiceError as exc:
            form.add_error(None, str(exc))
    if child is None:
        reason = " ".join(str(error) for error in form.non_field_errors()) or _field_errors(form)
        messages.error(request, f"The extension was not queued: {reason}")
        if request.htmx:
            response = render(
                request,
                "generations/components.html#extend-form",
                {"gen": parent, "form": form, "inline": True},
            )
            retarget(response, f"#extend-slot-{parent.pk}")
            reswap(response, "innerHTML")
            return response
        context = _detail_context(request, parent, extend_form=form)
        return render(request, "generations/detail.html", context, status=400)

    messages.success(request, f"Extending {_prompt_label(parent)} · {_cost([child])}.")
    if request.htmx:
        # The new card goes next to its parent, the inline form closes, the grid watches it.
        gen = queries.card(child.pk, request.user)
        response = render(
            request, "generations/components.html#extended", {"gen": gen, "parent": parent}
        )
        trigger_client_event(response, "jobs-changed")
        return response
    return redirect("generation-detail", pk=child.pk)


def _field_errors(form: ExtendForm) -> str:
    """The form's field errors in a sentence, each with its field's label (for the toast)."""
    return " ".join(
        f"{form[name].label}: {' '.join(str(e) for e in errors)}"
        for name, errors in form.errors.items()
    )


def _inline_ids(parent: Generation) -> str:
    """Element ids of a card's own extend form: several may be open in one gallery."""
    return f"extend-{parent.pk}-%s"


# --- jobs ---------------------------------------------------------------------------------------
# The dashboard polls through its small ``#jobs-live`` element: 204 while the change stamp
# (``generations.livestamp``, one cache read) is the one the page has; otherwise only the
# sections whose stamp moved, out of band, with the counts and the poller carrying the new stamp.
JOBS_LIVE = "jobs-live"


def _jobs_stamp() -> tuple[dict[str, str], str]:
    """The sections' stamps and the token the page's poll sends back. Without a shared cache
    (no Redis) a worker's bumps are not seen here: the table's stamp is added."""
    stamps = livestamp.read()
    token = livestamp.encode(stamps)
    if not livestamp.shared():
        token += "~" + Generation.objects.dashboard_stamp()[0]
    return stamps, token


def _jobs_context(
    request: HttpRequest, version: str, only: Iterable[str] | None = None
) -> dict[str, Any]:
    """The dashboard (or ``only`` these sections of it); its Failed and Recently finished lists
    on the pages the query string names (``?failed=``, ``?finished=``: "Older" links), which its
    poll keeps."""
    paging = queries.DashboardPaging.from_query(_dashboard_query(request))
    counts = queries.dashboard_counts()
    return {
        "sections": queries.dashboard_sections(paging, only),
        "counts": counts,
        "limits": queries.DASHBOARD_LIMITS,
        "paging": paging,
        "page_query": paging.query_string(),
        "version": version,
        "flying": counts.flying,
        "cost": money.default_cost(),
        "price_varies": money.price_table() is not None,
    }


@require_GET
def jobs(request: HtmxHttpRequest) -> HttpResponse:
    stamps, version = _jobs_stamp()
    target = htmx_target(request)
    client_version = request.GET.get("v", "")
    if target in ("jobs", JOBS_LIVE) and client_version == version:
        return HttpResponse(status=204)  # nothing shown changed: one cache read, no query
    if target == JOBS_LIVE:
        have, _, have_db = client_version.partition("~")
        changed = livestamp.changed(livestamp.decode(have), stamps)
        if have_db != version.partition("~")[2]:
            changed = list(livestamp.SECTIONS)
        context = _jobs_context(request, version, only=changed)
        return render(request, "generations/jobs.html#jobs-update", context)
    context = _jobs_context(request, version)
    response = render_for_target(request, "generations/jobs.html", context, {"jobs": "jobs"})
    if target == "jobs" and not context["flying"]:
        response.status_code = HTMX_STOP_POLLING  # an old page's poll: nothing more will change
    return response


def _dashboard_query(request: HttpRequest) -> QueryDict:
    """The dashboard's own query string: a job action posted from it (htmx) answers with the
    dashboard as the person sees it, so its pages come from the address it was shown at."""
    if request.method == "GET":
        return request.GET
    shown = urlsplit(request.headers.get("HX-Current-URL", ""))
    return QueryDict(shown.query) if shown.path == reverse("jobs") else QueryDict()


@require_GET
def jobs_count(request: HtmxHttpRequest) -> HttpResponse:
    """The running-jobs badge in the header: 204 while the count the client has is right and
    none of the caller's own jobs finished, failed or came to need attention since the page's
    cursor (``?since=``). Otherwise the badge again, carrying those events (``data-notify``)
    and the new cursor: ``app.js`` turns them into the tab title and, if the person asked for
    them, browser notifications. The one cheap poll every page already makes, no other."""
    count = queries.running_count()
    cursor = queries.notify_cursor(request.user)
    try:
        since = int(request.GET.get("since", ""))
    except ValueError:
        since = cursor  # an old page, or a hand-made URL: nothing to tell

    def badge() -> HttpResponse:
        events = queries.job_events_since(request.user, since) if 0 <= since < cursor else []
        notify = [
            {
                "id": str(event.generation_id),
                "status": event.status,
                "label": short_prompt(event.generation.user_prompt, 60),
                "url": reverse("generation-detail", args=[event.generation_id]),
            }
            for event in events
        ]
        context = {
            "running_jobs": count,
            "notify_cursor": cursor,
            "notify_json": json.dumps(notify) if notify else "",
        }
        response = render(request, "base.html#running-badge", context)
        return trigger_client_event(response, "jobs-changed")

    return answer_poll(
        request,
        version=f"{count}.{cursor}",
        settled=False,
        fragment=badge,
        client_version=f"{request.GET.get('v')}.{since}",
    )


def _job_action(
    request: HtmxHttpRequest, pk: uuid.UUID, action: Callable[[Generation, Any], object], done: str
) -> HttpResponse:
    gen = get_object_or_404(Generation, pk=pk)
    try:
        action(gen, request.user)
    except actions.ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{done} {_prompt_label(gen)}.")
    if htmx_target(request) == "jobs":
        context = _jobs_context(request, _jobs_stamp()[1])
        response = render(request, "generations/jobs.html#jobs", context)
        return trigger_client_event(response, "jobs-changed")
    return redirect(next_url(request, reverse("jobs")))


# The field a Retry form carries when its button is the one under the "may charge a second time"
# warning (components.html#action-form): the person's say-so for a retry that may pay twice.
CONFIRM_SECOND_CHARGE = "confirm_second_charge"


@require_POST
def retry(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    confirmed = request.POST.get(CONFIRM_SECOND_CHARGE) == "yes"

    def send_again(gen: Generation, user: Any) -> Generation:
        return actions.retry_generation(gen, user, confirm_second_charge=confirmed)

    return _job_action(request, pk, send_again, "Queued again:")


@require_POST
def cancel(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    return _job_action(request, pk, actions.cancel_generation, "Cancelled")


@require_POST
def mark_failed(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    return _job_action(request, pk, actions.mark_failed, "Marked failed:")


@require_POST
def check_again(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    return _job_action(request, pk, actions.check_again, "Checking again:")


@require_POST
def copy_again(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    return _job_action(request, pk, actions.copy_again, "Copying again:")


@require_POST
def delete(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    gen = get_object_or_404(Generation, pk=pk)
    label = _prompt_label(gen)
    try:
        actions.delete_generation(gen, request.user)
    except actions.ServiceError as exc:
        messages.error(request, str(exc))
        return redirect("generation-detail", pk=pk)
    messages.success(request, f"Deleted {label}.")
    return redirect("gallery")


# --- the account hold ---------------------------------------------------------------------------
@require_POST
def hold_resume(request: HtmxHttpRequest) -> HttpResponse:
    """The banner's "Resume now" (admins): every waiting job is sent again at once."""
    try:
        lifted = actions.resume_account(request.user)
    except actions.NotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    if lifted:
        messages.success(request, "Resumed: the waiting jobs are being sent.")
    else:
        messages.info(request, "The account was not on hold.")
    return redirect(next_url(request, reverse("jobs")))


@require_POST
def hold_cancel_waiting(request: HtmxHttpRequest) -> HttpResponse:
    """The banner's "Cancel waiting jobs" (admins): every queued job is cancelled, unsent."""
    try:
        cancelled = actions.cancel_waiting(request.user)
    except actions.NotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    messages.success(request, f"Cancelled {cancelled} waiting job{'s' if cancelled != 1 else ''}.")
    return redirect(next_url(request, reverse("jobs")))


# --- outbound webhooks (admins) -------------------------------------------------------------------
WEBHOOK_PARTIALS = {"webhooks": "webhooks"}


def _check_webhook_admin(request: HttpRequest) -> None:
    if not actions.is_admin(request.user):
        raise PermissionDenied("Only an admin can manage webhooks.")


def _webhooks_context(**extra: Any) -> dict[str, Any]:
    return {
        "hooks": queries.webhook_list(),
        "deliveries": queries.recent_deliveries(),
        "events": WebhookEvent.choices,
        "allow_private": settings.WEBHOOK_ALLOW_PRIVATE,
        "form": {"url": "", "events": list(WebhookEvent.values)},
        **extra,
    }


@sensitive_post_parameters("secret")  # never in an error report or a debug page
@require_http_methods(["GET", "POST"])
def team_webhooks(request: HtmxHttpRequest) -> HttpResponse:
    """List, add (POST) and the delivery log. A secret is shown once, in the answer to the POST
    that made it (when the admin left it blank and one was drawn); never again after."""
    _check_webhook_admin(request)
    if request.method != "POST":
        return render_for_target(
            request, "generations/team_webhooks.html", _webhooks_context(), WEBHOOK_PARTIALS
        )
    url = request.POST.get("url", "")
    typed = request.POST.get("secret", "").strip()
    chosen = request.POST.getlist("events")
    secret = typed or webhooks.new_secret()
    try:
        hook = actions.add_webhook(request.user, url, secret, chosen or None)
    except actions.ServiceError as exc:
        # What was typed stays, but not the secret: no page ever holds one it was sent.
        context = _webhooks_context(
            error=str(exc), form={"url": url, "events": chosen}, secret_typed=bool(typed)
        )
        # htmx swaps only 2xx answers: the fragment with the message comes as a 200.
        status = 200 if htmx_target(request) == "webhooks" else 422
        return render_for_target(
            request, "generations/team_webhooks.html", context, WEBHOOK_PARTIALS, status=status
        )
    messages.success(request, f"Webhook added: {hook.url}.")
    if typed:
        if htmx_target(request) == "webhooks":
            return render(request, "generations/team_webhooks.html#webhooks", _webhooks_context())
        return redirect("team-webhooks")
    context = _webhooks_context(new_secret=secret, new_hook=hook)
    response = render_for_target(
        request, "generations/team_webhooks.html", context, WEBHOOK_PARTIALS
    )
    patch_cache_control(response, no_store=True)  # the one answer that holds the secret
    return response


def _webhook_action(
    request: HtmxHttpRequest, action: Callable[[], object], done: str
) -> HttpResponse:
    _check_webhook_admin(request)
    try:
        action()
    except actions.ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    if htmx_target(request) == "webhooks":
        return render(request, "generations/team_webhooks.html#webhooks", _webhooks_context())
    return redirect("team-webhooks")


@require_POST
def team_webhook_active(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    active = request.POST.get("active") == "yes"
    return _webhook_action(
        request,
        lambda: actions.set_webhook_active(request.user, pk, active),
        f"Webhook {pk} {'resumed' if active else 'paused'}.",
    )


@require_POST
def team_webhook_remove(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _webhook_action(
        request, lambda: actions.remove_webhook(request.user, pk), f"Webhook {pk} removed."
    )
