"""The Django admin: people, tokens and a read-only view of every job.

Pipeline fields are read-only here: a change form saved over a row that a worker changed in the
meantime would write the old status back and strand a paid job. Job actions go through the
same services as the pages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest

from generations import actions
from generations.models import ApiToken, AuditEntry, Generation, StatusEvent


class StatusEventInline(admin.TabularInline):
    model = StatusEvent
    extra = 0
    can_delete = False
    readonly_fields = ("at", "status", "state", "note")

    def has_add_permission(self, request: HttpRequest, obj: Generation | None = None) -> bool:
        return False


def _run(
    request: HttpRequest,
    queryset: QuerySet[Generation],
    action: Callable[[Generation, actions.User], object],
    done: str,
) -> None:
    ok = 0
    for gen in queryset:
        try:
            action(gen, request.user)
            ok += 1
        except actions.ServiceError as exc:
            messages.warning(request, f"{gen.pk}: {exc}")
    if ok:
        messages.success(request, f"{done}: {ok}")


@admin.action(description="Retry jobs that cannot be paid twice")
def retry(
    modeladmin: GenerationAdmin, request: HttpRequest, queryset: QuerySet[Generation]
) -> None:
    """Jobs whose earlier request may have been charged are refused, each with the reason."""
    _run(request, queryset, actions.retry_generation, "Queued again")


@admin.action(description="Retry, even jobs that may be paid twice (request may have been charged)")
def retry_paying_twice(
    modeladmin: GenerationAdmin, request: HttpRequest, queryset: QuerySet[Generation]
) -> None:
    """The admin's explicit say-so: choosing this action, worded so, is the confirmation."""

    def retry_confirmed(gen: Generation, user: actions.User) -> Generation:
        return actions.retry_generation(gen, user, confirm_second_charge=True, via="admin")

    _run(request, queryset, retry_confirmed, "Queued again")


@admin.action(description="Mark needs-attention jobs failed")
def mark_failed(
    modeladmin: GenerationAdmin, request: HttpRequest, queryset: QuerySet[Generation]
) -> None:
    _run(request, queryset, actions.mark_failed, "Marked failed")


@admin.action(description="Cancel queued jobs")
def cancel(
    modeladmin: GenerationAdmin, request: HttpRequest, queryset: QuerySet[Generation]
) -> None:
    _run(request, queryset, actions.cancel_generation, "Cancelled")


class DateSafeChangeList(ChangeList):
    """A change list whose date drill-down refuses an impossible date instead of a 500.

    Django turns ``?created_at__year=…`` into ``datetime(year, month, day)`` and turns its
    ValueError (year 0, month 13) into the admin's "invalid filter" redirect; a number too big
    for a C integer raises OverflowError instead, which it does not catch.
    """

    def get_filters(self, request: HttpRequest) -> Any:
        try:
            return super().get_filters(request)
        except OverflowError as exc:
            raise IncorrectLookupParameters(exc) from exc


class DateSafeAdmin(admin.ModelAdmin):
    """For every admin with a ``date_hierarchy`` (ours, and django-axes' three, re-registered
    below)."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return DateSafeChangeList


def _date_safe_axes_admins() -> None:
    """django-axes registers its logs with a date drill-down of their own: the same guard."""
    for model in (AccessAttempt, AccessLog, AccessFailureLog):
        if not admin.site.is_registered(model):
            continue  # AXES_ENABLE_ADMIN = False
        current = type(admin.site.get_model_admin(model))
        if issubclass(current, DateSafeAdmin):
            continue
        admin.site.unregister(model)
        admin.site.register(
            model, type(f"DateSafe{current.__name__}", (DateSafeAdmin, current), {})
        )


_date_safe_axes_admins()


@admin.register(Generation)
class GenerationAdmin(DateSafeAdmin):
    list_display = (
        "short_prompt",
        "status",
        "state",
        "aspect_ratio",
        "created_by",
        "created_at",
        "posts_sent",
    )
    list_filter = ("status", "aspect_ratio", "kind")
    search_fields = ("user_prompt", "prompt", "remote_id", "id")
    date_hierarchy = "created_at"
    list_select_related = ("created_by",)
    actions = [retry, retry_paying_twice, mark_failed, cancel]
    inlines = [StatusEventInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Generation | None = None) -> list[str]:
        return [f.name for f in Generation._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are made on the New page or through the API

    def has_delete_permission(self, request: HttpRequest, obj: Generation | None = None) -> bool:
        return False  # deletes go through services (files, extensions, jobs in flight)

    @admin.display(description="prompt")
    def short_prompt(self, obj: Generation) -> str:
        return obj.user_prompt[:80]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made with `manage.py createapitoken`, which shows the key once


@admin.register(AuditEntry)
class AuditEntryAdmin(DateSafeAdmin):
    """The audit log, read-only: nobody adds, changes or deletes an entry, here or anywhere
    (the model refuses it too). Admins read it on the Team page."""

    list_display = ("at", "actor_name", "action", "subject_name", "summary")
    list_filter = ("action",)
    search_fields = ("actor_name", "subject_name", "summary", "generation_id")
    date_hierarchy = "at"
    actions = None

    def get_readonly_fields(self, request: HttpRequest, obj: AuditEntry | None = None) -> list[str]:
        return [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False
