"""What lumaweb keeps: every prompt and generation, its history, and API tokens.

The database is the source of truth for every job; the broker only carries wake-ups.
Status changes go through ``generations.pipeline.transitions`` with conditional updates.

The questions every part asks about a row ("due for a poll?", "queued but nobody took it?",
"settled?", "what changed since the client last looked?") are answered here, once: as
``GenerationQuerySet`` methods for the database and as ``Generation`` properties for one row.
The sweeper, the poller, ``manage.py jobs``, the chaos check, the pages and the template tags
all read these definitions.
"""

from __future__ import annotations

import hashlib
import heapq
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Count, F, Max, Min, OuterRef, Q, Subquery
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class AspectRatio(models.TextChoices):
    """The shapes Luma's models accept, with the words the create page shows beside them."""

    WIDE = "16:9", "Widescreen"
    VERTICAL = "9:16", "Vertical"
    SQUARE = "1:1", "Square"
    CLASSIC = "4:3", "Classic"
    PORTRAIT = "3:4", "Portrait"
    CINEMA = "21:9", "Cinema"
    TALL = "9:21", "Tall"


ASPECT_RATIOS: list[str] = list(AspectRatio.values)


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTING = "submitting", "Submitting"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"
    CANCELLED = "cancelled", "Cancelled"


IN_FLIGHT = (Status.QUEUED, Status.SUBMITTING, Status.IN_PROGRESS)


class Kind(models.TextChoices):
    CREATE = "create", "New"
    EXTEND = "extend", "Extension"  # continues ``parent`` (its first keyframe is parent's video)
    # Official Luma API only (the provider's capabilities say so):
    REVERSE = "reverse", "What came before"  # ends where ``parent`` begins
    INTERPOLATE = "interpolate", "Interpolation"  # runs from ``parent`` to ``end_parent``


KEYFRAME_EXTENSIONS = ("png", "jpg", "webp")


def _keyframe_path(instance: Generation, filename: str) -> str:
    # Random, unguessable names: uploaded keyframes are served publicly for the upstream. The
    # form re-encodes uploads and names them by their real type (generations/images.py); any
    # other extension is never kept, so nothing stored here is served as, say, a PDF or HTML.
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    ext = "jpg" if ext == "jpeg" else ext
    return f"keyframes/{secrets.token_urlsafe(24)}.{ext if ext in KEYFRAME_EXTENSIONS else 'bin'}"


def _ago(seconds: float, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=seconds)


# A POST the service answered with a job id and then reported ``failed``: that job cost nothing
# (the provider refunds failed generations, UPSTREAM_API.md), so its POST is accounted for.
_REFUNDED = Q(remote_id__isnull=False, state="failed")
# ``posts_sent`` counts the POSTs of a row that may have reached the service (it is lowered again
# whenever an answer proves nothing started: 429, 503, any 4xx, a refused connection). A Retry
# sends one more, so it may pay a second time when any counted POST is not accounted for: a
# needs-attention row (the answer never came), or a failed or cancelled one that still counts
# such a POST (marked failed after needs attention, a late answer kept as a row of its own, a job
# the service accepted that timed out and may still finish and be charged).
MAY_PAY_TWICE = Q(status=Status.NEEDS_ATTENTION) | Q(
    Q(posts_sent__gt=1) | (Q(posts_sent=1) & ~_REFUNDED),
    status__in=[Status.FAILED, Status.CANCELLED],
)


# Finished, but every attempt to copy the video failed (or it cannot succeed): shown from the
# upstream URL, until a person asks for the copy again.
COPY_GIVEN_UP = Q(status=Status.COMPLETED, video_file="", assets_next_at__isnull=True)


# Accepted by the service, then given up on by lumaweb because its poll deadline passed (no
# progress, or the service no longer listed it); not a job the service itself said failed. It
# may have finished since: a person may have it polled again ("Check again"), which sends nothing.
TIMED_OUT = Q(status=Status.FAILED, remote_id__isnull=False) & ~Q(state="failed")


def holds_a_slot(now: datetime) -> Q:
    """``submitting`` and ``in_progress``, and a ``needs_attention`` row whose POST began less
    than LUMA_POLL_DEADLINE ago: that POST may have started a generation that runs upstream
    now, on the account's slots. Older ones no longer count: a job it may have started has
    finished by then (lumaweb gives up on a running job after the same time), and rows that
    wait for a person must not hold the team's slots for ever."""
    recent = _ago(settings.LUMA_POLL_DEADLINE, now)
    return Q(status__in=[Status.SUBMITTING, Status.IN_PROGRESS]) | Q(
        status=Status.NEEDS_ATTENTION, post_started_at__gte=recent
    )


SLOT_STATUSES = (Status.QUEUED, Status.SUBMITTING, Status.IN_PROGRESS, Status.NEEDS_ATTENTION)


def waits_for_a_slot(now: datetime) -> Q:
    """Queued, due (``next_attempt_at`` empty or past) and allowed a POST."""
    return (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)) & Q(
        status=Status.QUEUED, posts_sent__lt=F("posts_authorized")
    )


class GenerationQuerySet(models.QuerySet["Generation"]):
    """Every row predicate the pipeline, the pages and the operator commands share."""

    def finished(self) -> GenerationQuerySet:
        return self.filter(status=Status.COMPLETED)

    def in_flight(self) -> GenerationQuerySet:
        return self.filter(status__in=IN_FLIGHT)

    def due_for_poll(self, now: datetime) -> GenerationQuerySet:
        """In progress upstream and its next poll is due."""
        return self.filter(status=Status.IN_PROGRESS, next_poll_at__lte=now)

    def not_polled_lately(self, now: datetime) -> GenerationQuerySet:
        """In progress, but no poller has looked at it for a dozen intervals (beat down?)."""
        overdue = _ago(max(60.0, settings.LUMA_POLL_INTERVAL * 12), now)
        return self.filter(status=Status.IN_PROGRESS, next_poll_at__lt=overdue)

    def waiting_for_a_worker(self, now: datetime) -> GenerationQuerySet:
        """Queued, due, and its wake-up was never sent or not taken within
        ``LUMA_REQUEUE_AFTER``: the message was lost (flushed Redis, crash before publish)."""
        return self.filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
            Q(enqueued_at__isnull=True)
            | Q(enqueued_at__lte=_ago(settings.LUMA_REQUEUE_AFTER, now)),
            status=Status.QUEUED,
        )

    def waiting_out_a_hold(self) -> GenerationQuerySet:
        """Queued with a POST still authorised: what an account hold keeps waiting (the
        banner's count, ``cancel-waiting``, the probe's candidates)."""
        return self.filter(status=Status.QUEUED, posts_sent__lt=F("posts_authorized"))

    def stale_submitting(self, now: datetime) -> GenerationQuerySet:
        """Left in ``submitting`` longer than ``LUMA_SUBMIT_STALE_AFTER``: its worker died."""
        stale = _ago(settings.LUMA_SUBMIT_STALE_AFTER, now)
        return self.filter(status=Status.SUBMITTING, status_changed_at__lte=stale)

    def copy_pending(self) -> GenerationQuerySet:
        """Finished, without its local copy yet, and the copy not given up on."""
        return self.filter(status=Status.COMPLETED, video_file="", assets_next_at__isnull=False)

    def copy_due(self, now: datetime) -> GenerationQuerySet:
        """A copy is due and its wake-up was never sent or not taken in time."""
        lost = Q(assets_enqueued_at__isnull=True) | Q(
            assets_enqueued_at__lte=_ago(settings.LUMA_REQUEUE_AFTER, now)
        )
        return self.filter(lost, status=Status.COMPLETED, assets_next_at__lte=now)

    def copy_given_up(self) -> GenerationQuerySet:
        """Finished, but every attempt to copy the video failed: shown from the upstream URL,
        and a person may ask for the copy again."""
        return self.filter(COPY_GIVEN_UP)

    def timed_out(self) -> GenerationQuerySet:
        """Failed because lumaweb stopped waiting, not because the service said so."""
        return self.filter(TIMED_OUT)

    def retry_may_pay_twice(self) -> GenerationQuerySet:
        """Rows a Retry could pay for a second time (see ``Generation.retry_may_pay_twice``)."""
        return self.filter(MAY_PAY_TWICE)

    def unsettled(self) -> GenerationQuerySet:
        """Rows that will still change by themselves (see ``Generation.is_settled``)."""
        return self.filter(Q(status__in=IN_FLIGHT) | Q(pk__in=self.copy_pending().values("pk")))

    # --- the account's capacity (LUMA_MAX_IN_FLIGHT, LUMA_MAX_SUBMITS_PER_MINUTE) --------------
    def holding_a_slot(self, now: datetime) -> GenerationQuerySet:
        """Sent (or being sent) and not finished: the rows LUMA_MAX_IN_FLIGHT counts
        (``holds_a_slot`` says which, and why a needs-attention row counts for a while)."""
        return self.filter(holds_a_slot(now))

    def waiting_for_a_slot(self, now: datetime) -> GenerationQuerySet:
        """Queued, due and allowed a POST: the rows that compete for the next free slot (a row
        backing off after a refusal joins again when its ``next_attempt_at`` comes)."""
        return self.filter(waits_for_a_slot(now))

    def dashboard_stamp(self) -> tuple[str, int]:
        """A stamp of what the job dashboard shows, read from the table, and how many jobs are
        in flight (one query): only where the cache is not shared between processes
        (``livestamp.shared``); elsewhere the stamp is kept on write. Any status change moves
        the newest ``status_changed_at``; the counts catch deletions. (Not ``last_polled_at``:
        a poll that changed nothing shown must not redraw every open dashboard.)"""
        row = self.aggregate(
            changed=Max("status_changed_at"),
            flying=Count("pk", filter=Q(status__in=IN_FLIGHT)),
            total=Count("pk"),
        )
        raw = f"{row['changed']}|{row['flying']}|{row['total']}"
        return hashlib.blake2s(raw.encode(), digest_size=8).hexdigest(), row["flying"]


@dataclass(frozen=True)
class Eta:
    """Where a job's progress bar starts now and how long until it should be full.

    ``kind`` is ``eta`` (an estimate to count down), ``overdue`` (past the estimate) or
    ``indeterminate`` (no estimate, or not running upstream)."""

    kind: str
    percent: float = 0.0
    remaining: float = 0.0


class Generation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    remote_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.CREATE)
    # An extension's parent may be deleted by its owner (nobody can block another's delete by
    # extending their video): the extension keeps its own video and these columns say what it
    # extended. ``parent`` becomes null, ``parent_removed_at`` records that it was removed, and
    # ``kept_ancestor`` points past the removed link(s) to the nearest ancestor still kept, so
    # the chain reads "ancestor → removed video → this one".
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="extensions"
    )
    parent_remote_id = models.CharField(
        max_length=255,
        blank=True,
        help_text="The upstream id this extends, copied at creation: the POST needs it even "
        "if the parent row is deleted before the extension is sent",
    )
    parent_removed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the video this extends was deleted"
    )
    kept_ancestor = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="With the parent removed: the nearest ancestor still kept, for the chain",
    )
    # An interpolation's second source (the video it runs into): ``parent`` is the first.
    end_parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    end_parent_remote_id = models.CharField(
        max_length=255,
        blank=True,
        help_text="The upstream id this interpolation runs into, copied at creation",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="generations",
    )

    # What was asked (field names as upstream).
    user_prompt = models.TextField()
    aspect_ratio = models.CharField(
        max_length=5, choices=AspectRatio.choices, default=AspectRatio.WIDE
    )
    expand_prompt = models.BooleanField(default=False)
    image_url = models.URLField(max_length=2048, blank=True)
    image_end_url = models.URLField(max_length=2048, blank=True)
    image_file = models.ImageField(upload_to=_keyframe_path, blank=True)
    image_end_file = models.ImageField(upload_to=_keyframe_path, blank=True)
    # Asked of providers that can (``generations.providers``: capabilities); empty = the
    # provider's default. ``concepts`` is a comma-separated list of the provider's concept keys.
    model = models.CharField(max_length=40, blank=True)
    resolution = models.CharField(max_length=10, blank=True)
    duration = models.CharField(max_length=10, blank=True)
    loop = models.BooleanField(default=False)
    concepts = models.CharField(max_length=400, blank=True)
    # What one POST of this row costs, in the provider's unit (tokens, credits), priced by the
    # provider when the row is made; 0 on rows older than per-row pricing.
    unit_cost = models.PositiveBigIntegerField(default=0)

    # lumaweb's own status, and what the upstream said.
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    status_changed_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=50, blank=True, help_text="The upstream's raw state")
    prompt = models.TextField(blank=True, help_text="The prompt as the upstream (re)wrote it")
    estimate_wait_seconds = models.PositiveIntegerField(null=True, blank=True)
    remote_created_at = models.DateTimeField(null=True, blank=True)
    video_url = models.URLField(max_length=4096, blank=True)
    thumbnail_url = models.URLField(max_length=4096, blank=True)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)

    # Errors as the upstream worded them.
    error = models.TextField(blank=True)
    error_code = models.PositiveIntegerField(null=True, blank=True)
    error_request_id = models.CharField(max_length=200, blank=True)

    # Submission bookkeeping: a paid POST is sent at most once without a person's say-so.
    attempts = models.PositiveIntegerField(default=0)
    posts_sent = models.PositiveIntegerField(
        default=0, help_text="POSTs that may have reached the upstream (each may be paid)"
    )
    posts_authorized = models.PositiveIntegerField(
        default=1, help_text="POSTs a person allowed; a retry after an unknown outcome adds one"
    )
    # Money (generations/money.py reads these): a retry of a job the service failed after
    # starting counts that refunded POST here before the row is cleared for the next one, and
    # moves the row's spending into the month of the retry, so a retry of last month's job is
    # paid from this month's budget.
    posts_refunded = models.PositiveIntegerField(
        default=0, help_text="POSTs the service failed after starting (not charged), before a retry"
    )
    posts_adopted = models.PositiveIntegerField(
        default=0,
        help_text="POSTs whose late answer was kept as a row of its own (counted on that row)",
    )
    billed_at = models.DateTimeField(
        default=timezone.now,
        help_text="When this row's spending is counted: its creation, or its latest retry",
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=32, blank=True, help_text="The submit attempt that owns it")
    post_started_at = models.DateTimeField(null=True, blank=True)

    # Timings.
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    last_progress_at = models.DateTimeField(null=True, blank=True)
    poll_errors = models.PositiveIntegerField(default=0)
    poll_lease = models.CharField(max_length=32, blank=True)

    # Local copies of the finished video and thumbnail.
    video_file = models.FileField(upload_to="videos/", blank=True)
    thumbnail_file = models.FileField(upload_to="thumbnails/", blank=True)
    video_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    assets_next_at = models.DateTimeField(null=True, blank=True)
    assets_enqueued_at = models.DateTimeField(null=True, blank=True)
    asset_attempts = models.PositiveIntegerField(default=0)
    # When ``generation.completed`` was recorded for the webhooks: once the copy settled (made,
    # or given up on), so the body points at lumaweb's own file. Set once, by a conditional
    # UPDATE, so a copy redone ("Copy again") tells no one a second time.
    completion_announced_at = models.DateTimeField(null=True, blank=True)
    asset_error = models.TextField(blank=True)

    # The Idempotency-Key (API) or one-time form key this row was made under, if any.
    submit_key = models.ForeignKey(
        "SubmitKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="generations",
    )

    liked_by = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="liked_generations"
    )

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # gallery: finished, newest (or oldest) first, keyset on (completed_at, id); the
            # live gallery's "anything new?" reads its first row. (On PostgreSQL migration 0019
            # adds trigram GIN indexes for the prompt search, queries.search.)
            models.Index(fields=["status", "-completed_at", "-id"], name="gen_status_completed_id"),
            # dashboard
            models.Index(fields=["status", "-created_at"], name="gen_status_created"),
            # dashboard: Recently finished and Failed, newest first, and their older pages
            models.Index(fields=["-status_changed_at", "-id"], name="gen_status_changed"),
            # poller: due in-flight rows
            models.Index(fields=["status", "next_poll_at"], name="gen_status_next_poll"),
            # sweeper: queued rows due, completed rows still to copy
            models.Index(fields=["status", "next_attempt_at"], name="gen_status_next_attempt"),
            models.Index(fields=["status", "assets_next_at"], name="gen_status_assets"),
            # budgets and usage: one month's rows, per person
            models.Index(fields=["billed_at", "created_by"], name="gen_billed_by"),
        ]

    def __str__(self) -> str:
        return f"{self.user_prompt[:60]} ({self.get_status_display()})"

    # --- derived values -------------------------------------------------------------------------
    @property
    def is_in_flight(self) -> bool:
        return self.status in IN_FLIGHT

    @property
    def can_extend(self) -> bool:
        return self.status == Status.COMPLETED and bool(self.remote_id)

    @property
    def retry_may_pay_twice(self) -> bool:
        """A Retry of this row may pay a second time, so it needs a person's explicit say-so
        (the same test as ``MAY_PAY_TWICE``, for one loaded row)."""
        if self.status == Status.NEEDS_ATTENTION:
            return True
        if self.status not in (Status.FAILED, Status.CANCELLED):
            return False
        refunded = bool(self.remote_id) and self.state == "failed"
        return self.posts_sent > (1 if refunded else 0)

    @property
    def has_local_video(self) -> bool:
        return bool(self.video_file)

    @property
    def timed_out(self) -> bool:
        """``TIMED_OUT`` for one loaded row: "Check again" is offered."""
        return self.status == Status.FAILED and bool(self.remote_id) and self.state != "failed"

    @property
    def copy_given_up(self) -> bool:
        """``COPY_GIVEN_UP`` for one loaded row: "Copy again" is offered."""
        return self.status == Status.COMPLETED and not self.video_file and not self.assets_next_at

    @property
    def display_video_url(self) -> str:
        """The local copy once it exists, the upstream's URL until then."""
        return self.video_file.url if self.video_file else self.video_url

    @property
    def display_thumbnail_url(self) -> str:
        return self.thumbnail_file.url if self.thumbnail_file else self.thumbnail_url

    @property
    def is_settled(self) -> bool:
        """Nothing more will change by itself: not in flight, and a finished video has its local
        copy (or the copy was given up on). Cards and the detail page poll until then."""
        if self.status in IN_FLIGHT:
            return False
        if self.status == Status.COMPLETED and not self.video_file:
            return self.assets_next_at is None
        return True

    @property
    def live_version(self) -> str:
        """A short stamp that changes whenever this row's live parts (its card, the detail
        page's live block) would look different: a move, a poll (the estimate may change), a
        copied file, settling. Polls send it back (``?v=``, a card's ``watch`` value) to be told
        "unchanged"."""
        polled = self.last_polled_at.timestamp() if self.last_polled_at else 0
        raw = (
            f"{self.status_changed_at.timestamp():.6f}|{polled:.6f}|{bool(self.video_file)}"
            f"|{bool(self.thumbnail_file)}|{self.is_settled}"
        )
        return hashlib.blake2s(raw.encode(), digest_size=6).hexdigest()

    def eta(self, now: datetime | None = None) -> Eta:
        """The progress bar's position. The estimate is the upstream's remaining time as of
        the last poll, so the expected end is ``last_polled_at (or submitted_at) + estimate``."""
        if self.status != Status.IN_PROGRESS or not self.submitted_at:
            return Eta("indeterminate")
        if self.estimate_wait_seconds is None:
            return Eta("indeterminate")
        now = now or timezone.now()
        seen = self.last_polled_at or self.submitted_at
        end = seen.timestamp() + self.estimate_wait_seconds
        total = max(1.0, end - self.submitted_at.timestamp())
        remaining = end - now.timestamp()
        if remaining <= 0:
            return Eta("overdue", percent=100.0)
        elapsed = now.timestamp() - self.submitted_at.timestamp()
        percent = max(0.0, min(99.0, 100 * elapsed / total))
        return Eta("eta", percent=round(percent, 1), remaining=round(remaining, 1))


class HoldCause(models.TextChoices):
    """Why the upstream account is on hold: refusals that say nothing about the job itself."""

    CREDITS = "credits", "The Luma account is out of credits"
    KEY = "key", "The service refused the API key"


class AccountHold(models.Model):
    """The upstream account is on hold: at most one row (``pk`` 1), there only while held.

    When the service refuses a POST for the account's sake (out of credits, key refused),
    nothing was started and every other job would be refused the same way: the jobs stay
    queued and nothing is sent but one probe every ``LUMA_HOLD_RETRY`` seconds. Changed only
    through ``generations.pipeline.hold`` (put on hold, lift, choose a probe).
    """

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON, editable=False)
    cause = models.CharField(max_length=10, choices=HoldCause.choices)
    reason = models.TextField(blank=True, help_text="What the service said (redacted)")
    status_code = models.PositiveIntegerField(null=True, blank=True)
    since = models.DateTimeField(default=timezone.now, help_text="The first refusal")
    last_refusal_at = models.DateTimeField(
        default=timezone.now,
        help_text="The latest refusal: only a POST started after it proves the account is fine",
    )
    retry_at = models.DateTimeField(help_text="When the sweeper may choose the next probe")
    probe = models.ForeignKey(
        Generation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The one queued job that may be sent while on hold, until a worker takes it",
    )
    probes = models.PositiveIntegerField(default=0, help_text="Probes chosen since the hold began")

    def __str__(self) -> str:
        return f"on hold since {self.since:%Y-%m-%d %H:%M:%S}: {self.get_cause_display()}"


class StatusEvent(models.Model):
    """One line of a generation's history: a status change, with the reason."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20, choices=Status.choices)
    state = models.CharField(max_length=50, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["generation", "at"], name="event_gen_at")]

    def __str__(self) -> str:
        return f"{self.generation_id} → {self.status} at {self.at:%Y-%m-%d %H:%M:%S}"


class SubmitKey(models.Model):
    """One idempotency key of one person: the ``Idempotency-Key`` header of an API create or
    extend, or the one-time key in a create or extend form.

    Unique per (person, key), so two requests carrying the same key, even at the same moment,
    make one row: the second INSERT waits for the first's transaction and then finds its key.
    ``fingerprint`` is a digest of what was asked (kind, parent, request fields), so the same key
    sent with a different request is recognised and refused rather than answered with a
    generation that is not what was asked. Kept after its generation is deleted (the key stays
    used: a replay must not make a new paid job).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="submit_keys"
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="submit_key_once_per_person")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.user_id})"

    def first_generation(self) -> Generation | None:
        """What the first request with this key made (None if it has been deleted since)."""
        return self.generations.order_by("created_at").first()


class ApiToken(models.Model):
    """A personal token for scripts: ``Authorization: Bearer lw_...``. Only a hash is kept."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
        """Create a token; the clear key is returned once and never stored."""
        key = "lw_" + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, key_hash=cls.hash_key(key), prefix=key[:10]
        )
        return token, key


class Role(models.TextChoices):
    """What a person may do. Admins manage the team and may do anything; creators may spend;
    viewers may watch, like, download and organise, but never cause a paid POST."""

    ADMIN = "admin", "Admin"
    CREATOR = "creator", "Creator"
    VIEWER = "viewer", "Viewer"


DEFAULT_ROLE = Role.CREATOR  # new accounts are creators unless an admin says otherwise


class Member(models.Model):
    """A person's role and monthly token budget. Made when an admin first sets something
    (``manage.py team set``); until then the person has the defaults (``Member.role_of``), so
    reading a role never writes."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="member"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=DEFAULT_ROLE)
    monthly_budget = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Tokens per calendar month (UTC); empty for no limit"
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"

    @staticmethod
    def of(user: AbstractBaseUser | AnonymousUser | None) -> Member | None:
        """The person's row, if an admin ever set one (cached on the user object: one query
        per request however often a page asks)."""
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        try:
            return user.member  # type: ignore[union-attr]
        except Member.DoesNotExist:
            return None

    @staticmethod
    def role_of(user: AbstractBaseUser | AnonymousUser | None) -> str:
        """Superusers are admins whatever their row says; anyone else has their row's role, or
        the default. Strangers (not logged in) are viewers."""
        if user is None or not getattr(user, "is_authenticated", False):
            return Role.VIEWER
        if getattr(user, "is_superuser", False):
            return Role.ADMIN
        member = Member.of(user)
        return member.role if member is not None else DEFAULT_ROLE

    @staticmethod
    def budget_of(user: AbstractBaseUser | AnonymousUser | None) -> int | None:
        """The person's monthly budget in tokens; None for no limit."""
        member = Member.of(user)
        return member.monthly_budget if member is not None else None


class Team(models.Model):
    """The one team (a singleton row, pk 1): its monthly token budget. Every create, extend and
    retry locks this row while it checks the budgets and inserts, so concurrent requests are
    decided one after another and can never together overspend."""

    SINGLETON = 1
    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON, editable=False)
    monthly_budget = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Tokens per calendar month (UTC); empty for no limit"
    )

    def __str__(self) -> str:
        return "the team"

    @classmethod
    def current(cls) -> Team:
        return cls.objects.get_or_create(pk=cls.SINGLETON)[0]

    @classmethod
    def lock(cls) -> Team:
        """The team row, locked until the caller's transaction ends (``select_for_update``; on
        SQLite the IMMEDIATE transaction already serialises writers)."""
        return cls.objects.select_for_update().get_or_create(pk=cls.SINGLETON)[0]


class DeletedSpending(models.Model):
    """What a deleted generation cost (its POSTs, at its ``unit_cost``), kept when its row goes:
    deleting a video must not give its cost back to this month's budget. Written by
    ``actions.delete_generation`` from the same definitions (``generations.money``) the usage of
    live rows is read with."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    billed_at = models.DateTimeField()
    spent = models.PositiveIntegerField(default=0, help_text="POSTs that were or may be charged")
    possibly = models.PositiveIntegerField(default=0, help_text="Of those, never confirmed")
    refunded = models.PositiveIntegerField(default=0)
    unit_cost = models.PositiveBigIntegerField(
        default=0,
        help_text="What one of its POSTs cost, in the provider's unit (0: before per-row prices)",
    )
    deleted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["billed_at", "user"], name="deleted_spending_billed")]

    def __str__(self) -> str:
        return f"{self.spent} POST(s) by {self.user_id} at {self.billed_at:%Y-%m-%d}"


# --- the audit log -------------------------------------------------------------------------------
class AuditAction(models.TextChoices):
    """What the audit log records: the money-relevant things people (and lumaweb) do, and what
    makes videos public (share links made and revoked)."""

    SPENT = "spent", "Queued a paid job"
    SECOND_CHARGE = "second_charge", "Authorised a possible second charge"
    ROLE = "role", "Changed a role"
    BUDGET = "budget", "Changed a person's budget"
    TEAM_BUDGET = "team_budget", "Changed the team's budget"
    MEMBER_ADDED = "member_added", "Added a member"
    MEMBER_DEACTIVATED = "member_deactivated", "Deactivated a member"
    MEMBER_REACTIVATED = "member_reactivated", "Reactivated a member"
    HOLD_BEGAN = "hold_began", "Account put on hold"
    HOLD_LIFTED = "hold_lifted", "Account hold lifted"
    CANCEL_WAITING = "cancel_waiting", "Cancelled the waiting jobs"
    DELETED = "deleted", "Deleted a generation"
    SHARE_MADE = "share_made", "Made a public share link"
    SHARE_REVOKED = "share_revoked", "Revoked public share links"


class AppendOnlyError(Exception):
    """The audit log is append-only: an entry is never changed or deleted."""


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    """Refuses bulk changes: the only UPDATE allowed is the one Django's delete collector makes
    when a person is deleted (``on_delete=SET_NULL``: the entry keeps their name)."""

    _FORGETTABLE = frozenset({"actor", "subject"})

    def update(self, **kwargs: object) -> int:
        if kwargs and set(kwargs) <= self._FORGETTABLE and all(v is None for v in kwargs.values()):
            return super().update(**kwargs)
        raise AppendOnlyError("The audit log is append-only: entries cannot be changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("The audit log is append-only: entries cannot be deleted.")

    def bulk_update(self, *args: object, **kwargs: object) -> int:
        raise AppendOnlyError("The audit log is append-only: entries cannot be changed.")


class AuditEntry(models.Model):
    """One money-relevant action: who spent, who authorised a possible second charge, role and
    budget changes, members added or deactivated, holds and resumes, deletions.

    Append-only (``save`` of an existing row, ``delete`` and bulk changes are refused). Names
    are kept as text and the generation as a bare id, so an entry still says who and what after
    the person or the video is deleted. Written through ``generations.audit.record``, inside the
    transaction of the change it records.
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(
        max_length=150, help_text='Who did it: a username, "operator" or "lumaweb"'
    )
    action = models.CharField(max_length=24, choices=AuditAction.choices, db_index=True)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject_name = models.CharField(max_length=150, blank=True, help_text="Whom it concerns")
    # No foreign key: the entry outlives a deleted generation.
    generation_id = models.UUIDField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    summary = models.CharField(max_length=300)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name}: {self.summary}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise AppendOnlyError("The audit log is append-only: entries cannot be changed.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("The audit log is append-only: entries cannot be deleted.")


# --- the account's capacity ----------------------------------------------------------------------
GRANT_MEMORY = timedelta(days=1)  # how long a slot grant is kept (fair share reads the last one)


class SubmitGrant(models.Model):
    """One submit attempt given a slot under the account's capacity: at most one POST follows.

    Written in the same locked transaction as the claim, *before* the POST, so the rate limit
    (``LUMA_MAX_SUBMITS_PER_MINUTE``) counts a POST that is about to go out, and one that was
    refused afterwards (a 429 or a 503 was a POST all the same), and a row sent twice in a
    minute twice, which ``post_started_at`` (one per row, cleared on a refusal) cannot. Fair
    share reads each person's last grant. Kept for a day (the sweeper deletes older ones)."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # No foreign key: deleting a job does not give its minute back.
    generation_id = models.UUIDField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "at"], name="grant_user_at")]

    def __str__(self) -> str:
        return f"slot for {self.generation_id} at {self.at:%Y-%m-%d %H:%M:%S}"


@dataclass(frozen=True)
class Limits:
    """The account's capacity in force: ``in_flight`` (LUMA_MAX_IN_FLIGHT), ``per_window``
    (LUMA_MAX_SUBMITS_PER_MINUTE, counted over LUMA_SUBMIT_RATE_WINDOW seconds), 0 for none;
    and what the pacer (``pipeline.pace``) adds after a 429: ``spacing`` (seconds between two
    grants, 0 for none) and ``closed`` (a ``Retry-After`` pauses every submit)."""

    in_flight: int = 0
    per_window: int = 0
    spacing: float = 0.0
    closed: bool = False

    @property
    def on(self) -> bool:
        return bool(self.in_flight or self.per_window or self.spacing or self.closed)


def configured_limits() -> Limits:
    """The caps of the settings, the ceiling of anything the pacer allows."""
    return Limits(settings.LUMA_MAX_IN_FLIGHT, settings.LUMA_MAX_SUBMITS_PER_MINUTE)


def capacity_limited(limits: Limits | None = None) -> bool:
    """Whether any capacity limit is on (both 0: lumaweb sends as fast as it can)."""
    return (limits or configured_limits()).on


@dataclass(frozen=True)
class Waiter:
    """One person in the line for slots: how many of their jobs hold a slot now, since when
    they have waited without one (the later of their oldest waiting job and their last slot),
    and how many of their jobs wait."""

    user_id: int | None
    holding: int
    since: datetime
    waiting: int


@dataclass(frozen=True)
class Slots:
    """The account's capacity as it stands: ``room`` (how many more submits may start now;
    ``None``: no limit) and ``line`` (everyone with a job waiting, in fair-share order)."""

    room: int | None
    line: list[Waiter]


def slots(now: datetime, limits: Limits | None = None) -> Slots:
    """Read the capacity in two queries: one grouped by person over the rows that hold or
    wait for a slot (with each person's last grant as a subquery), one count of the grants in
    the last 60 s (only with a rate limit). Fair-share order: whoever holds the fewest slots
    first, and among them whoever has waited longest without one."""
    waits, holds = waits_for_a_slot(now), holds_a_slot(now)
    last_grant = (
        SubmitGrant.objects.filter(user_id=OuterRef("created_by_id"), at__gte=now - GRANT_MEMORY)
        .order_by("-at")
        .values("at")[:1]
    )
    people = list(
        # The status list is implied by the two conditions; said outright, it lets the planner
        # use the status index instead of reading every finished row.
        Generation.objects.filter(waits | holds, status__in=SLOT_STATUSES)
        .order_by()
        .values("created_by_id")
        .annotate(
            waiting=Count("pk", filter=waits),
            oldest=Min("status_changed_at", filter=waits),
            holding=Count("pk", filter=holds),
            last=Subquery(last_grant),
        )
    )
    limits = limits or configured_limits()
    rooms: list[int] = []
    if limits.in_flight:
        rooms.append(limits.in_flight - sum(p["holding"] for p in people))
    if limits.per_window:
        window = timedelta(seconds=settings.LUMA_SUBMIT_RATE_WINDOW)
        sent = SubmitGrant.objects.filter(at__gt=now - window).count()
        rooms.append(limits.per_window - sent)
    if limits.closed:
        rooms.append(0)
    elif limits.spacing:  # one at a time, ``spacing`` seconds after the last grant
        last = SubmitGrant.objects.aggregate(last=Max("at"))["last"]
        spaced = last is None or now >= last + timedelta(seconds=limits.spacing)
        rooms.append(1 if spaced else 0)
    line = [
        Waiter(
            user_id=p["created_by_id"],
            holding=p["holding"],
            since=max(p["oldest"], p["last"] or p["oldest"]),
            waiting=p["waiting"],
        )
        for p in people
        if p["waiting"]
    ]
    line.sort(key=lambda w: (w.holding, w.since, w.user_id is None, w.user_id or 0))
    return Slots(room=max(0, min(rooms)) if rooms else None, line=line)


def free_slots(now: datetime) -> int | None:
    """How many more submits may start now: the smaller of the room under LUMA_MAX_IN_FLIGHT
    and under LUMA_MAX_SUBMITS_PER_MINUTE (grants in the last LUMA_SUBMIT_RATE_WINDOW s);
    ``None``: no limit."""
    return slots(now).room


def turns(line: list[Waiter], count: int) -> list[int | None]:
    """Whose job gets each of the next ``count`` slots. Each slot goes to the first person in
    fair-share order; they then hold one more and have waited least, and take their place
    again (people with nothing left waiting drop out)."""
    heap = [(w.holding, 0, i, w.user_id) for i, w in enumerate(line)]  # 0: original order
    heapq.heapify(heap)
    left = {w.user_id: w.waiting for w in line}
    order: list[int | None] = []
    served = len(line)
    while heap and len(order) < count:
        holding, _, _, user_id = heapq.heappop(heap)
        order.append(user_id)
        left[user_id] -= 1
        if left[user_id]:
            served += 1  # later than everyone who has not just had a turn
            heapq.heappush(heap, (holding + 1, 1, served, user_id))
    return order


def slot_positions(now: datetime, line: list[Waiter] | None = None) -> dict[uuid.UUID, int]:
    """For every job waiting for a slot, how many jobs will get one before it ("3 ahead"):
    fair share's turns, each person's own jobs oldest first (one query, given the line)."""
    if line is None:
        line = slots(now).line
    if not line:
        return {}
    queues: dict[int | None, list[uuid.UUID]] = {w.user_id: [] for w in line}
    rows = (
        Generation.objects.waiting_for_a_slot(now)
        .order_by("status_changed_at", "created_at", "pk")
        .values_list("pk", "created_by_id")
    )
    for pk, user_id in rows:
        if user_id in queues:  # (not if they joined the line between the two queries)
            queues[user_id].append(pk)
    for pks in queues.values():
        pks.reverse()  # pop() takes the oldest
    positions: dict[uuid.UUID, int] = {}
    for turn in turns(line, sum(w.waiting for w in line)):
        if queues[turn]:
            positions[queues[turn].pop()] = len(positions)
    return positions


class ProcessKind(models.TextChoices):
    """The background processes a page cannot do without: jobs wait for a worker, polls and
    sweeps for beat."""

    WORKER = "worker", "worker"
    BEAT = "beat", "scheduler (beat)"


class Heartbeat(models.Model):
    """One running worker or beat process, as it last said "still here" (every
    ``LUMA_HEARTBEAT_INTERVAL`` seconds, written by the process itself, ``generations.heartbeat``).

    A process counts as running while its ``last_seen`` is younger than
    ``LUMA_HEARTBEAT_STALE_AFTER``; rows of processes gone for ``HEARTBEAT_KEEP`` are pruned by
    the live ones. The database, not the broker, holds them: the banner and ``/healthz`` read
    them in one indexed query, and a flushed Redis does not make every worker look dead.
    """

    kind = models.CharField(max_length=10, choices=ProcessKind.choices)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    KEEP = timedelta(hours=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "hostname", "pid"], name="heartbeat_process")
        ]
        # "Who was seen in the last minute" (the banner) and the prune read a range of it.
        indexes = [models.Index(fields=["last_seen", "kind"], name="heartbeat_seen_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {self.hostname}:{self.pid}, last seen {self.last_seen:%H:%M:%S}"

    @staticmethod
    def record(kind: str, hostname: str, pid: int, now: datetime | None = None) -> None:
        """Say this process is alive (one INSERT … ON CONFLICT UPDATE), and forget processes
        gone for an hour (one indexed DELETE)."""
        now = now or timezone.now()
        Heartbeat.objects.bulk_create(
            [Heartbeat(kind=kind, hostname=hostname, pid=pid, started_at=now, last_seen=now)],
            update_conflicts=True,
            unique_fields=["kind", "hostname", "pid"],
            update_fields=["last_seen"],
        )
        Heartbeat.objects.filter(last_seen__lt=now - Heartbeat.KEEP).delete()

    @staticmethod
    def stale_before(now: datetime | None = None) -> datetime:
        """Heartbeats older than this say nothing about now."""
        return (now or timezone.now()) - timedelta(seconds=settings.LUMA_HEARTBEAT_STALE_AFTER)


# --- outbound webhooks ---------------------------------------------------------------------------
class WebhookEvent(models.TextChoices):
    """The statuses a webhook may be told about; the event name is ``generation.<value>``."""

    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"


class Webhook(models.Model):
    """An address told (signed POSTs) when a generation completes, fails or needs a person.

    ``secret`` signs every delivery (HMAC-SHA256 of the body); it is kept because signing needs
    it, but no page, command output, log line or stored error shows it after it was set."""

    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=200, editable=False)
    events = models.CharField(
        max_length=100,
        default=",".join(WebhookEvent.values),
        help_text="Comma-separated: completed, failed, needs_attention",
    )
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} → {self.url}"

    def __repr__(self) -> str:  # never the secret, even in a debugger or a traceback
        return f"<Webhook {self.pk} {self.url}>"

    @property
    def event_list(self) -> list[str]:
        return [e for e in self.events.split(",") if e]

    def wants(self, status: str) -> bool:
        return status in self.event_list


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDeliveryQuerySet(models.QuerySet["WebhookDelivery"]):
    def due(self, now: datetime) -> WebhookDeliveryQuerySet:
        """Pending and due, for a webhook that is not paused: never sent yet, a retry whose
        time has come, or one whose sender's lease ran out (a worker that died mid-POST:
        delivered again, at least once). A paused webhook's deliveries wait, uncounted.

        Claims are UPDATEs through this, so every condition is on the delivery row itself and
        there is no join: Django turns an UPDATE through a join into ``WHERE id IN (SELECT ...
        JOIN ...)``, and PostgreSQL, when the row was changed by a claimer it waited for,
        re-checks only ``id IN (...)``, not the status or the lease: two senders at once. The
        webhook's flag is a subquery on ``webhook_id`` (the sender checks it again after its
        claim); ``tests/test_webhooks_claim_race.py`` races two connections on PostgreSQL."""
        return self.filter(
            status=DeliveryStatus.PENDING,
            next_attempt_at__lte=now,
            webhook_id__in=Webhook.objects.filter(active=True).values("pk"),
        )

    def waiting_for_a_worker(self, now: datetime) -> WebhookDeliveryQuerySet:
        """Due, and no wake-up on its way: none was sent, or the one sent was not taken within
        ``LUMA_REQUEUE_AFTER`` of when it was to arrive (lost, or the sender died after taking
        it: a claim clears the stamp). What the sweeper wakes, each once."""
        return self.due(now).filter(
            Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=_ago(settings.LUMA_REQUEUE_AFTER, now))
        )


class WebhookDelivery(models.Model):
    """One event for one webhook: the body exactly as sent (the signature is over these bytes,
    and every retry sends the same body with the same ``delivery_id``), and how sending went.

    ``generation_id`` is not a foreign key: a delivery outlives the video it speaks of."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    generation_id = models.UUIDField()
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    payload = models.TextField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # When it is due; while a sender holds it, the end of that sender's lease.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When its wake-up message was sent to arrive (now, or a retry's countdown); cleared by the
    # claim that takes it. The sweeper sends another only when that one is long overdue.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["webhook", "created_at"], name="delivery_webhook_at"),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.delivery_id} ({self.status})"


# --- boards and share links ----------------------------------------------------------------------
class BoardQuerySet(models.QuerySet["Board"]):
    def visible_to(self, user: AbstractBaseUser | AnonymousUser) -> BoardQuerySet:
        """The one rule of who sees a board: its owner, and everyone when it is shared (read by
        the board pages, the API, the ZIP and share links alike). Strangers see none."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(Q(created_by_id=user.pk) | Q(shared=True))


class Board(models.Model):
    """A named collection of videos. Private boards are their owner's alone; shared boards are
    seen by the whole team, and anyone who may see one may add or remove its videos. Only the
    owner (or an admin) renames, shares or deletes it."""

    name = models.CharField(max_length=100)
    shared = models.BooleanField(default=False, help_text="Seen by the whole team")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="boards"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, help_text="Last add, remove or rename")
    generations: models.ManyToManyField[Generation, BoardItem] = models.ManyToManyField(
        Generation, through="BoardItem", related_name="boards", blank=True
    )

    objects = BoardQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["created_by", "shared"], name="board_owner_shared")]

    def __str__(self) -> str:
        return self.name


class BoardItem(models.Model):
    """One video on one board (at most once), and who put it there when."""

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="items")
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="board_items")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-added_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["board", "generation"], name="board_item_once")
        ]
        indexes = [models.Index(fields=["board", "added_at"], name="board_item_added")]

    def __str__(self) -> str:
        return f"{self.generation_id} on board {self.board_id}"


def new_share_token() -> str:
    """An unguessable link token: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


class ShareLinkQuerySet(models.QuerySet["ShareLink"]):
    def live(self, now: datetime | None = None) -> ShareLinkQuerySet:
        """Links that still open: not revoked and not past their expiry."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ShareLink(models.Model):
    """A read-only public page for one video or one board, for people outside the team.

    Exactly one of ``generation`` and ``board`` is set. The token is the only key: whoever has
    the link sees the videos (and the prompts, if ``show_prompts``), nothing else, until it
    expires or is revoked; then the page and its media answer 404."""

    token = models.CharField(max_length=64, unique=True, default=new_share_token, editable=False)
    generation = models.ForeignKey(
        Generation, null=True, blank=True, on_delete=models.CASCADE, related_name="share_links"
    )
    board = models.ForeignKey(
        Board, null=True, blank=True, on_delete=models.CASCADE, related_name="share_links"
    )
    show_prompts = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="share_links"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    views = models.PositiveIntegerField(default=0)
    last_viewed_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(generation__isnull=False, board__isnull=True)
                    | Q(generation__isnull=True, board__isnull=False)
                ),
                name="share_link_one_subject",
            )
        ]
        indexes = [models.Index(fields=["created_by", "created_at"], name="share_owner_at")]

    def __str__(self) -> str:
        subject = f"board {self.board_id}" if self.board_id else f"video {self.generation_id}"
        return f"share link for {subject}"

    def __repr__(self) -> str:  # the token is the key: never in a log line or a traceback
        return f"<ShareLink {self.pk} {self}>"

    def is_live(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
