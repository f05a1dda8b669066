"""What the studio pages read: the gallery's filtered pages, the dashboard's sections and the
version stamps that let a poll answer "nothing changed" without rendering.

Every function here issues a fixed number of SQL queries, whatever the number of rows: counts
and "liked by me" are annotated as subqueries, authors come with ``select_related``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib.auth import get_user_model
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, Lower
from django.http import QueryDict

from generations import money
from generations.models import (
    ASPECT_RATIOS,
    IN_FLIGHT,
    AccountHold,
    AuditAction,
    AuditEntry,
    DeliveryStatus,
    Generation,
    Heartbeat,
    Member,
    ProcessKind,
    Status,
    StatusEvent,
    Team,
    Webhook,
    WebhookDelivery,
)

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser
    from django_stubs_ext import WithAnnotations

    Viewer = AbstractBaseUser | AnonymousUser  # request.user: whose likes, whose "mine"

GALLERY_PAGE_SIZE = 24
MAX_QUERY_LENGTH = 200
# Rows per dashboard section (issue 12: the page stays under 100 KB at 100,000 rows; the
# sections say how many there are in all, and Failed and Recently finished page back).
DASHBOARD_LIMITS = {"attention": 10, "running": 15, "queued": 10, "failed": 10, "finished": 10}

Like = Generation.liked_by.through


# --- annotations --------------------------------------------------------------------------------
class CardFields(TypedDict):
    """What ``with_card_fields`` adds to every row it reads."""

    liked: bool  # by the person looking
    like_count: int
    extension_count: int  # direct extensions only


if TYPE_CHECKING:
    # A generation read through ``with_card_fields``: mypy knows its three extra attributes and
    # refuses a plain ``Generation`` where a card is needed (``api.serializers.generation_json``).
    Card = WithAnnotations[Generation, CardFields]


def _count_of(queryset: QuerySet[Any]) -> Coalesce:
    """A correlated COUNT(*) subquery (no JOIN, so counts never multiply each other)."""
    counted = (
        queryset.order_by()
        .annotate(_one=Value(1, output_field=IntegerField()))
        .values("_one")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def with_card_fields(queryset: QuerySet[Generation], user: Viewer) -> QuerySet[Card]:
    """What a card shows, in the same query: author, liked-by-me, like and extension counts."""
    likes = Like.objects.filter(generation_id=OuterRef("pk"))
    liked: Exists | Value
    if user.is_authenticated:
        liked = Exists(likes.filter(user_id=user.pk))
    else:  # someone not logged in has liked nothing
        liked = Value(False, output_field=BooleanField())
    return queryset.select_related("created_by").annotate(
        liked=liked,
        like_count=_count_of(likes),
        extension_count=_count_of(Generation.objects.filter(parent_id=OuterRef("pk"))),
    )


def card(pk: uuid.UUID | str, user: Viewer) -> Card:
    """One generation with the card fields (raises Generation.DoesNotExist)."""
    return with_card_fields(Generation.objects.all(), user).get(pk=pk)


# --- gallery ------------------------------------------------------------------------------------
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_INT = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only (int() also takes "²" and "٣")

# The gallery's orders: the query-string value ("" is the default, newest first), its label.
SORTS = {"": "Newest first", "oldest": "Oldest first", "likes": "Most liked"}
MAX_SEARCH_WORDS = 16
# A new-videos count stops at this (the notice says "99+"): counting is bounded, like a page.
MAX_NEW_COUNT = 99

Moment = tuple[datetime, uuid.UUID]  # (completed_at, id): a place in the newest/oldest order


def _clean_text(value: str) -> str:
    """Drop NUL and other control characters (Postgres refuses NUL in text), trim, cap."""
    return "".join(ch for ch in value if ch.isprintable()).strip()[:MAX_QUERY_LENGTH]


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch, in integers: exact by construction (a keyset cursor one
    microsecond off repeats or skips a row; ``int(timestamp() * 1e6)`` truncates the wrong way
    before 1970, and its exactness after depends on float rounding)."""
    return (moment - EPOCH) // _MICRO


def _int(text: str) -> int | None:
    return int(text) if _INT.fullmatch(text) else None


def encode_moment(moment: datetime, pk: uuid.UUID) -> str:
    return f"{_micros(moment)}.{pk}"


def decode_moment(value: str) -> Moment | None:
    """``<micros>.<uuid>`` back to (moment, id); None for anything else (never raises)."""
    micros, _, pk = value.partition(".")
    number = _int(micros)
    if number is None:
        return None
    try:
        return EPOCH + number * _MICRO, uuid.UUID(pk)
    except (ValueError, OverflowError):
        return None


def encode_cursor(gen: Generation, sort: str = "") -> str:
    """Where a page ended, in the page's order: (completed_at, id), and for "most liked" the
    like count first (the card's ``like_count``)."""
    assert gen.completed_at is not None  # the gallery shows finished videos only
    moment = encode_moment(gen.completed_at, gen.pk)
    return f"{gen.like_count}.{moment}" if sort == "likes" else moment  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Cursor:
    """A decoded "Load more" position: the like count (most liked only), completed_at, id."""

    moment: datetime
    pk: uuid.UUID
    likes: int | None = None


def decode_cursor(value: str, sort: str = "") -> Cursor | None:
    """The position a cursor of ``sort`` names, or None when it is not one (a stale link, a
    cursor of another order, garbage): the page then starts from the top."""
    if sort == "likes":
        likes, _, value = value.partition(".")
        count = _int(likes)
        if count is None or count < 0:
            return None
    else:
        count = None
    moment = decode_moment(value)
    return None if moment is None else Cursor(moment[0], moment[1], count)


_EDGES = re.compile(r"^[\W_]+|[\W_]+$")  # what is neither a letter nor a digit, at either end


def search_words(text: str) -> list[str]:
    """The words of a search, a few at most, with the punctuation at their edges dropped
    ("dusk," is "dusk"; a "word" of punctuation alone is none)."""
    words = (_EDGES.sub("", word) for word in text.split())
    return [word for word in words if word][:MAX_SEARCH_WORDS]


def search(finished: QuerySet[Generation], text: str) -> QuerySet[Generation]:
    """Videos whose prompt (the person's or the service's rewrite) has every word of ``text``,
    in any order, whatever the case, as a substring ("lant" finds "lantern's"). The same SQL on
    every database (``UPPER(col) LIKE UPPER('%word%')``); on PostgreSQL migration 0019's
    trigram GIN indexes on ``UPPER(user_prompt)`` and ``UPPER(prompt)`` serve it, so a rare or
    missing word is a few index pages (it was a full-text test of every finished row, read in
    the gallery's order: 200-280 ms at 100,000 rows), and SQLite scans."""
    words = search_words(text) or [text]  # only punctuation ("!!!", "—"): the text as it is
    for word in words:
        finished = finished.filter(Q(user_prompt__icontains=word) | Q(prompt__icontains=word))
    return finished


@dataclass
class GalleryFilters:
    """The gallery's query string, parsed leniently: what cannot be understood is ignored and
    named in ``ignored`` so the page can say so (never a 500, never a 400 for a stale link)."""

    mine: bool = False
    liked: bool = False
    aspect_ratio: str = ""
    q: str = ""
    sort: str = ""  # a key of SORTS; "" is newest first
    after: Cursor | None = None
    ignored: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, params: QueryDict) -> GalleryFilters:
        filters = cls()
        who = params.get("who", "")
        if who in ("mine", "all", ""):
            filters.mine = who == "mine"
        else:
            filters.ignored.append("who")
        liked = params.get("liked", "")
        if liked in ("1", "on", "true", ""):
            filters.liked = bool(liked)
        else:
            filters.ignored.append("liked")
        ratio = params.get("ar", "")
        if ratio in ASPECT_RATIOS:
            filters.aspect_ratio = ratio
        elif ratio:
            filters.ignored.append("aspect ratio")
        sort = params.get("sort", "")
        if sort in SORTS or sort == "newest":
            filters.sort = "" if sort == "newest" else sort
        else:
            filters.ignored.append("order")
        raw_q = params.get("q", "")
        filters.q = _clean_text(raw_q)
        if len(raw_q) > MAX_QUERY_LENGTH:
            filters.ignored.append("the end of a very long search")
        after = params.get("after", "")
        if after:
            filters.after = decode_cursor(after, filters.sort)
            if filters.after is None:
                filters.ignored.append("page position")
        return filters

    @property
    def active(self) -> bool:
        return bool(self.mine or self.liked or self.aspect_ratio or self.q)

    @property
    def newest_first(self) -> bool:
        return self.sort == ""

    def values(self, **overrides: str) -> dict[str, str]:
        """The filters as query-string values, the empty ones left out."""
        values = {
            "who": "mine" if self.mine else "",
            "liked": "1" if self.liked else "",
            "ar": self.aspect_ratio,
            "sort": self.sort,
            "q": self.q,
            **overrides,
        }
        return {key: value for key, value in values.items() if value}

    def query_string(self, **overrides: str) -> str:
        """The filters as a query string (without the page cursor unless given)."""
        params = QueryDict(mutable=True)
        params.update(self.values(**overrides))
        return params.urlencode()


@dataclass
class GalleryPage:
    items: list[Card]
    next_cursor: str | None


def _finished(user: Viewer, filters: GalleryFilters) -> QuerySet[Card]:
    """Every finished video the filters let through, with the card fields (not ordered)."""
    finished: QuerySet[Generation] = Generation.objects.filter(
        status=Status.COMPLETED, completed_at__isnull=False
    )
    if filters.mine:
        finished = finished.filter(created_by_id=user.pk)
    if filters.aspect_ratio:
        finished = finished.filter(aspect_ratio=filters.aspect_ratio)
    if filters.q:
        finished = search(finished, filters.q)
    query = with_card_fields(finished, user)
    if filters.liked:
        query = query.filter(liked=True)
    return query


def _before(moment: datetime, pk: uuid.UUID) -> Q:
    return Q(completed_at__lt=moment) | Q(completed_at=moment, pk__lt=pk)


def _after(moment: datetime, pk: uuid.UUID) -> Q:
    return Q(completed_at__gt=moment) | Q(completed_at=moment, pk__gt=pk)


# The keyset's OR is exact but not an index range: PostgreSQL reads the index from its start
# and filters, so a page 45,000 rows down read 45,000 entries (16-22 ms, growing with depth).
# The redundant bound on ``completed_at`` alone is a range the index starts at (4 ms, flat).
def _bounded_before(moment: datetime, pk: uuid.UUID) -> Q:
    return Q(completed_at__lte=moment) & _before(moment, pk)


def _bounded_after(moment: datetime, pk: uuid.UUID) -> Q:
    return Q(completed_at__gte=moment) & _after(moment, pk)


def _ordered(query: QuerySet[Card], sort: str, after: Cursor | None) -> QuerySet[Card]:
    """``query`` in the order ``sort`` names, from just past ``after``. Every order ends in
    (completed_at, id), so it is total and a keyset page never repeats or skips a row."""
    if sort == "oldest":
        if after is not None:
            query = query.filter(_bounded_after(after.moment, after.pk))
        return query.order_by("completed_at", "pk")
    if sort == "likes":
        if after is not None and after.likes is not None:
            query = query.filter(
                Q(like_count__lt=after.likes)
                | (Q(like_count=after.likes) & _before(after.moment, after.pk))
            )
        return query.order_by("-like_count", "-completed_at", "-pk")
    if after is not None:
        query = query.filter(_bounded_before(after.moment, after.pk))
    return query.order_by("-completed_at", "-pk")


def gallery_page(
    user: Viewer, filters: GalleryFilters, size: int = GALLERY_PAGE_SIZE
) -> GalleryPage:
    """One page of finished videos in the chosen order (newest first by default),
    keyset-paginated on the order's key ((likes,) completed_at, id), so that new videos
    arriving while someone scrolls never shift or repeat a page. One query."""
    query = _ordered(_finished(user, filters), filters.sort, filters.after)
    rows = list(query[: size + 1])
    items = rows[:size]
    more = len(rows) > size
    next_cursor = encode_cursor(items[-1], filters.sort) if more else None
    return GalleryPage(items=items, next_cursor=next_cursor)


# --- the live gallery: what finished since a page was drawn ------------------------------------
def newest_finished() -> str:
    """The newest finished video's place (``encode_moment``), anyone's, whatever the filters,
    or "" when there is none. A page remembers it; its poll asks this again and is answered
    204 while it is the same. One query, an index scan that stops at the first row
    (``gen_status_completed_id``): no aggregate over the table."""
    row = (
        Generation.objects.filter(status=Status.COMPLETED, completed_at__isnull=False)
        .order_by("-completed_at", "-pk")
        .values_list("completed_at", "pk")
        .first()
    )
    if row is None or row[0] is None:
        return ""
    return encode_moment(row[0], row[1])


def _between(query: QuerySet[Card], since: Moment | None, until: Moment | None) -> QuerySet[Card]:
    if since is not None:
        query = query.filter(_after(*since))
    if until is not None:
        moment, pk = until
        query = query.filter(Q(completed_at__lt=moment) | Q(completed_at=moment, pk__lte=pk))
    return query


def finished_since(
    user: Viewer,
    filters: GalleryFilters,
    since: Moment | None,
    until: Moment | None,
    *,
    leave_out: Iterable[uuid.UUID] = (),
    limit: int = GALLERY_PAGE_SIZE,
) -> list[Card]:
    """The finished videos the filters let through that came after ``since`` (all of them for
    None) and not after ``until`` (the ``newest_finished`` the answer reports: a row committed
    between the two queries is left for the next poll, not sent twice), newest first, at most
    ``limit`` + 1 (one more says "more than fit"), without the ones in ``leave_out`` (cards the
    page already shows). One query, on the index's range."""
    query = _between(_finished(user, filters), since, until)
    leave_out = list(leave_out)
    if leave_out:
        query = query.exclude(pk__in=leave_out)
    return list(query.order_by("-completed_at", "-pk")[: limit + 1])


def count_finished_since(
    user: Viewer, filters: GalleryFilters, since: Moment | None, until: Moment | None
) -> int:
    """How many finished videos the filters let through came after ``since`` (and not after
    ``until``), counted up to ``MAX_NEW_COUNT`` + 1 (one query; the ids of that many rows at
    most, not a COUNT over the table)."""
    query = _between(_finished(user, filters), since, until)
    return len(query.order_by().values_list("pk", flat=True)[: MAX_NEW_COUNT + 1])


# --- dashboard ----------------------------------------------------------------------------------
def _jobs(statuses: Iterable[str], order: str, limit: int) -> list[Generation]:
    query = Generation.objects.filter(status__in=list(statuses)).select_related("created_by")
    return list(query.order_by(order)[:limit])


def encode_moment_cursor(moment: datetime, pk: uuid.UUID) -> str:
    return encode_moment(moment, pk)


# The dashboard's lists that page back through older jobs: their statuses, keyset on when the
# job got there (``status_changed_at``, then id), newest first.
PAGED_SECTIONS = {
    "failed": (Status.FAILED,),
    "finished": (Status.COMPLETED, Status.CANCELLED),
}


@dataclass
class DashboardPaging:
    """Where the dashboard's paged lists stand (``?failed=``/``?finished=``: the last job
    shown before, as a cursor), parsed leniently: a cursor that cannot be read is the newest
    page. ``older`` holds each list's cursor for its next page (filled by the sections)."""

    before: dict[str, tuple[datetime, uuid.UUID]] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)
    older: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_query(cls, params: QueryDict) -> DashboardPaging:
        paging = cls()
        for name in PAGED_SECTIONS:
            raw = str(params.get(name, ""))
            cursor = decode_moment(raw)
            if cursor is not None:
                paging.before[name], paging.raw[name] = cursor, raw
        return paging

    def query_string(self, **overrides: str) -> str:
        """The lists' positions as a query string; an override of "" goes back to the newest."""
        params = QueryDict(mutable=True)
        for name, value in {**self.raw, **overrides}.items():
            if value:
                params[name] = value
        return params.urlencode()

    def older_query(self, name: str) -> str:
        return self.query_string(**{name: self.older[name]}) if name in self.older else ""

    def newest_query(self, name: str) -> str | None:
        """The query for this list's newest page, or None when it is on it."""
        return self.query_string(**{name: ""}) if name in self.before else None

    # Template-friendly names (a template cannot pass arguments).
    @property
    def failed_older(self) -> str:
        return self.older_query("failed")

    @property
    def finished_older(self) -> str:
        return self.older_query("finished")

    @property
    def failed_newest(self) -> str | None:
        return self.newest_query("failed")

    @property
    def finished_newest(self) -> str | None:
        return self.newest_query("finished")


def _older_jobs(name: str, paging: DashboardPaging) -> list[Generation]:
    """One page of a paged list (one query: one row more than shown says an older page is
    there); records that page's cursor in ``paging.older``."""
    limit = DASHBOARD_LIMITS[name]
    query = Generation.objects.filter(status__in=list(PAGED_SECTIONS[name]))
    if name in paging.before:
        moment, pk = paging.before[name]
        query = query.filter(  # the first bound is redundant: the index's range (see above)
            Q(status_changed_at__lte=moment)
            & (Q(status_changed_at__lt=moment) | Q(status_changed_at=moment, pk__lt=pk))
        )
    rows = list(
        query.select_related("created_by").order_by("-status_changed_at", "-pk")[: limit + 1]
    )
    if len(rows) > limit:
        last = rows[limit - 1]
        paging.older[name] = encode_moment_cursor(last.status_changed_at, last.pk)
    return rows[:limit]


def _running() -> list[Generation]:
    """The oldest jobs submitting or in progress: one query per status, each an index range
    read in order (``gen_status_created``) that stops at the limit, merged here; one query for
    both would sort every running row (27 ms with 2,100 of them)."""
    limit = DASHBOARD_LIMITS["running"]
    rows = [
        *_jobs([Status.SUBMITTING], "created_at", limit),
        *_jobs([Status.IN_PROGRESS], "created_at", limit),
    ]
    return sorted(rows, key=lambda gen: (gen.created_at, gen.pk))[:limit]


def dashboard_sections(
    paging: DashboardPaging | None = None, only: Iterable[str] | None = None
) -> dict[str, list[Generation]]:
    """The dashboard's sections (``only`` these, for a poll's out-of-band answer), one query
    each; Failed and Recently finished page back (``paging``) through older jobs. Running and
    Queued list the oldest first, Needs attention the newest first."""
    paging = paging if paging is not None else DashboardPaging()
    wanted = set(only) if only is not None else set(DASHBOARD_LIMITS)
    readers: dict[str, Any] = {
        "attention": lambda: _jobs(
            [Status.NEEDS_ATTENTION], "-status_changed_at", DASHBOARD_LIMITS["attention"]
        ),
        "running": _running,
        "queued": lambda: _jobs([Status.QUEUED], "created_at", DASHBOARD_LIMITS["queued"]),
        "failed": lambda: _older_jobs("failed", paging),
        "finished": lambda: _older_jobs("finished", paging),
    }
    return {name: read() for name, read in readers.items() if name in wanted}


@dataclass(frozen=True)
class DashboardCounts:
    """How many jobs each live section holds in all (the page lists the first few)."""

    attention: int = 0
    running: int = 0
    queued: int = 0

    @property
    def flying(self) -> int:
        return self.running + self.queued


def dashboard_counts() -> DashboardCounts:
    """One grouped count over the unsettled statuses (index ``gen_status_created``: the rows in
    flight and needing attention, never the finished ones)."""
    rows = (
        Generation.objects.filter(status__in=[*IN_FLIGHT, Status.NEEDS_ATTENTION])
        .order_by()
        .values("status")
        .annotate(n=Count("pk"))
    )
    by_status = {row["status"]: row["n"] for row in rows}
    return DashboardCounts(
        attention=by_status.get(Status.NEEDS_ATTENTION, 0),
        running=by_status.get(Status.SUBMITTING, 0) + by_status.get(Status.IN_PROGRESS, 0),
        queued=by_status.get(Status.QUEUED, 0),
    )


def running_count() -> int:
    return Generation.objects.in_flight().count()


# --- "my job is done": what the running badge's poll tells the person's open pages --------------
NOTIFY_STATUSES = (Status.COMPLETED, Status.FAILED, Status.NEEDS_ATTENTION)
MAX_NOTIFICATIONS = 5


def _my_job_events(user: Viewer) -> QuerySet[StatusEvent]:
    return StatusEvent.objects.filter(generation__created_by_id=user.pk, status__in=NOTIFY_STATUSES)


def notify_cursor(user: Viewer) -> int:
    """The newest "finished, failed or needs attention" event of the person's own jobs (0 for
    none): a page remembers it, and the badge's poll tells what came after (one query)."""
    if not user.is_authenticated:
        return 0
    return _my_job_events(user).aggregate(newest=Max("id"))["newest"] or 0


def job_events_since(user: Viewer, since: int) -> list[StatusEvent]:
    """The person's job events after ``since``, newest first, a few at most (one query)."""
    if not user.is_authenticated:
        return []
    return list(
        _my_job_events(user)
        .filter(id__gt=since)
        .select_related("generation")
        .order_by("-id")[:MAX_NOTIFICATIONS]
    )


@dataclass(frozen=True)
class HoldView:
    """The account hold as the banner and ``/healthz`` show it."""

    cause: str
    cause_label: str
    reason: str
    status_code: int | None
    since: datetime
    retry_at: datetime
    waiting: int  # queued jobs that will go once the hold lifts

    @property
    def retry_due(self) -> bool:
        """The next probe may be chosen at the next sweep ("shortly", not "in 0 minutes")."""
        return self.retry_at <= datetime.now(UTC)

    def as_json(self) -> dict[str, Any]:
        """For ``/healthz``, which anyone may read: the cause and the figures, not the
        service's own words (those are on the pages, behind a login)."""
        return {
            "cause": self.cause,
            "since": self.since.isoformat(),
            "next_try": self.retry_at.isoformat(),
            "waiting": self.waiting,
        }


def account_hold() -> HoldView | None:
    """The account hold with the number of jobs it keeps waiting, or None (one query)."""
    row = (
        AccountHold.objects.filter(pk=AccountHold.SINGLETON)
        .annotate(waiting=_count_of(Generation.objects.waiting_out_a_hold()))
        .first()
    )
    if row is None:
        return None
    return HoldView(
        cause=row.cause,
        cause_label=row.get_cause_display(),
        reason=row.reason,
        status_code=row.status_code,
        since=row.since,
        retry_at=row.retry_at,
        waiting=row.waiting,
    )


def missing_processes() -> list[str]:
    """The kinds of background process (``ProcessKind``) with no heartbeat younger than
    ``LUMA_HEARTBEAT_STALE_AFTER``: what every page's banner names. One query, on the
    ``last_seen`` index (the table holds a row per process seen in the last hour)."""
    seen = Heartbeat.objects.filter(last_seen__gte=Heartbeat.stale_before()).aggregate(
        **{kind: Count("pk", filter=Q(kind=kind)) for kind in ProcessKind.values}
    )
    return [kind for kind in ProcessKind.values if not seen[kind]]


def processes() -> dict[str, dict[str, Any]]:
    """For ``/healthz``: per kind, when one was last seen and how many were seen within
    ``LUMA_HEARTBEAT_STALE_AFTER`` (one query)."""
    fresh = Q(last_seen__gte=Heartbeat.stale_before())
    figures = Heartbeat.objects.aggregate(
        **{f"{kind}_last": Max("last_seen", filter=Q(kind=kind)) for kind in ProcessKind.values},
        **{f"{kind}_n": Count("pk", filter=Q(kind=kind) & fresh) for kind in ProcessKind.values},
    )
    report: dict[str, dict[str, Any]] = {}
    for kind in ProcessKind.values:
        last = figures[f"{kind}_last"]
        report[kind] = {
            "running": figures[f"{kind}_n"],
            "last_seen": last.isoformat() if last else None,
        }
    return report


# --- outbound webhooks ----------------------------------------------------------------------------
RECENT_DELIVERIES = 50


def webhook_list() -> list[Webhook]:
    """Every webhook, with its pending and failed delivery counts (one query)."""
    deliveries = WebhookDelivery.objects.filter(webhook_id=OuterRef("pk"))
    return list(
        Webhook.objects.select_related("created_by")
        .annotate(
            pending=_count_of(deliveries.filter(status=DeliveryStatus.PENDING)),
            failed=_count_of(deliveries.filter(status=DeliveryStatus.FAILED)),
        )
        .order_by("created_at", "id")
    )


def recent_deliveries(
    *, failed_only: bool = False, limit: int = RECENT_DELIVERIES
) -> list[WebhookDelivery]:
    """The latest deliveries, newest first, with their webhook (one query)."""
    rows = WebhookDelivery.objects.select_related("webhook").defer("payload", "webhook__secret")
    if failed_only:
        rows = rows.filter(status=DeliveryStatus.FAILED)
    return list(rows.order_by("-created_at", "-id")[:limit])


# --- the Team page -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemberRow:
    """One person on the Team page: their role, budget and this month's figures (the unit's)."""

    person: Any
    role: str
    budget: int | None
    usage: money.Usage
    is_superuser: bool

    @property
    def left(self) -> int | None:
        return None if self.budget is None else max(0, self.budget - self.usage.counted)


@dataclass(frozen=True)
class TeamView:
    members: list[MemberRow]
    month: money.MonthUsage
    team_budget: int | None

    @property
    def team_left(self) -> int | None:
        if self.team_budget is None:
            return None
        return max(0, self.team_budget - self.month.team.counted)


def team() -> TeamView:
    """Everyone (active first, then by name) with role, budget and this month's usage, and the
    team's budget: four queries, whatever the number of people or jobs."""
    month = money.month_usage()
    people = (
        get_user_model().objects.select_related("member").order_by("-is_active", Lower("username"))
    )
    rows = [
        MemberRow(
            person=person,
            role=Member.role_of(person),
            budget=Member.budget_of(person),
            usage=month.of(person.pk),
            is_superuser=person.is_superuser,
        )
        for person in people
    ]
    return TeamView(rows, month, Team.current().monthly_budget)


AUDIT_PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_before: int | None  # the keyset of the next (older) page, if there is one
    action: str  # the filter ("" for every action)


def audit_entries(action: str = "") -> QuerySet[AuditEntry]:
    """The audit log, newest first, filtered by ``action`` when it is a known one."""
    rows = AuditEntry.objects.order_by("-id")
    if action in AuditAction.values:
        rows = rows.filter(action=action)
    return rows


def audit_page(action: str = "", before: str = "", size: int = AUDIT_PAGE_SIZE) -> AuditPage:
    """One page of the audit log (one query): ``before`` is the last id the previous page
    showed (keyset paging: stable while new entries are written)."""
    rows = audit_entries(action)
    if re.fullmatch(r"[0-9]{1,18}", before):  # ASCII only: int() refuses "²", isdigit() not
        rows = rows.filter(id__lt=int(before))
    entries = list(rows[: size + 1])
    more = len(entries) > size
    entries = entries[:size]
    return AuditPage(
        entries, entries[-1].pk if more else None, action if action in AuditAction.values else ""
    )
