"""What lumaweb keeps: every prompt and generation, its history, and API tokens.

The database is the source of truth for every job; the broker only carries wake-ups.
Status changes go through ``generations.services`` with conditional updates.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

ASPECT_RATIOS = ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21"]


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
    EXTEND = "extend", "Extension"


def _keyframe_path(instance: Generation, filename: str) -> str:
    # Random, unguessable names: uploaded keyframes are served publicly for the upstream.
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "jpg"
    return f"keyframes/{secrets.token_urlsafe(24)}.{ext}"


class GenerationQuerySet(models.QuerySet):
    def finished(self) -> GenerationQuerySet:
        return self.filter(status=Status.COMPLETED)

    def in_flight(self) -> GenerationQuerySet:
        return self.filter(status__in=IN_FLIGHT)


class Generation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    remote_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CREATE)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="extensions"
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
    aspect_ratio = models.CharField(max_length=5, default="16:9")
    expand_prompt = models.BooleanField(default=False)
    image_url = models.URLField(max_length=2048, blank=True)
    image_end_url = models.URLField(max_length=2048, blank=True)
    image_file = models.ImageField(upload_to=_keyframe_path, blank=True)
    image_end_file = models.ImageField(upload_to=_keyframe_path, blank=True)

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
    asset_error = models.TextField(blank=True)

    liked_by = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="liked_generations"
    )

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # gallery: finished, newest first
            models.Index(fields=["status", "-completed_at"], name="gen_status_completed"),
            # dashboard
            models.Index(fields=["status", "-created_at"], name="gen_status_created"),
            # poller: due in-flight rows
            models.Index(fields=["status", "next_poll_at"], name="gen_status_next_poll"),
            # sweeper: queued rows due, completed rows still to copy
            models.Index(fields=["status", "next_attempt_at"], name="gen_status_next_attempt"),
            models.Index(fields=["status", "assets_next_at"], name="gen_status_assets"),
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
    def has_local_video(self) -> bool:
        return bool(self.video_file)

    @property
    def display_video_url(self) -> str:
        """The local copy once it exists, the upstream's URL until then."""
        return self.video_file.url if self.video_file else self.video_url

    @property
    def display_thumbnail_url(self) -> str:
        return self.thumbnail_file.url if self.thumbnail_file else self.thumbnail_url

    def chain(self) -> list[Generation]:
        """Ancestors (root first), this generation, then its extensions depth-first."""
        ancestors: list[Generation] = []
        node = self.parent
        while node is not None and len(ancestors) < 100:
            ancestors.append(node)
            node = node.parent
        ancestors.reverse()
        descendants: list[Generation] = []
        frontier = [self]
        while frontier and len(descendants) < 200:
            children = list(Generation.objects.filter(parent__in=frontier).order_by("created_at"))
            descendants.extend(children)
            frontier = children
        return [*ancestors, self, *descendants]


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
    def issue(cls, user, name: str) -> tuple[ApiToken, str]:
        """Create a token; the clear key is returned once and never stored."""
        key = "lw_" + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, key_hash=cls.hash_key(key), prefix=key[:10]
        )
        return token, key
