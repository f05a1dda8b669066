"""What people do: create, extend, retry, resolve, cancel, delete, like.

Views, the JSON API, the admin and management commands call these functions; they check who may
do what, change rows through the named transitions of ``generations.pipeline.transitions`` and
wake a worker through ``generations.tasks`` once the change is committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone

from generations import tasks
from generations.inputs import GenerationRequest
from generations.models import Generation, Kind, Status, StatusEvent
from generations.pipeline import hold
from generations.pipeline import transitions as t

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.contrib.auth.models import User as Account

    # Who asks: ``request.user`` (the AUTH_USER_MODEL or AnonymousUser), or None for the
    # operator (management commands).
    User = Account | AnonymousUser | None

RETRYABLE = (Status.FAILED, Status.NEEDS_ATTENTION, Status.CANCELLED)
DELETABLE = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


class ServiceError(Exception):
    """An action a person asked for that cannot be done; the message says why."""


class NotAllowed(ServiceError):
    """The person may not change this generation: it is someone else's."""


def _who(user: User) -> str:
    return getattr(user, "username", "") or "someone"


def check_can_change(gen: Generation, user: User) -> None:
    """Retry, cancel, resolve and delete are for the generation's owner and admins.

    ``user=None`` is the operator (management commands), who may do anything.
    """
    if user is None or getattr(user, "is_superuser", False) or getattr(user, "is_staff", False):
        return
    if gen.created_by_id is None or gen.created_by_id != user.pk:
        raise NotAllowed("Only the person who made this job, or an admin, can change it.")


def create_generation(
    user: User, request: GenerationRequest, *, parent: Generation | None = None
) -> Generation:
    """Queue a new generation (or, with ``parent``, an extension). Nothing is sent yet: a
    worker is woken after the commit, and the row is stamped as enqueued in the same INSERT."""
    with transaction.atomic():
        parent_remote_id = ""
        if parent is not None:
            # Locked: a delete of the parent at the same moment waits for this extension.
            parent_remote_id = (
                Generation.objects.select_for_update()
                .filter(pk=parent.pk, status=Status.COMPLETED, remote_id__isnull=False)
                .values_list("remote_id", flat=True)
                .first()
            ) or ""
            if not parent_remote_id:
                raise ServiceError("Only a finished video can be extended.")
        gen = Generation.objects.create(
            created_by=None if user is None or isinstance(user, AnonymousUser) else user,
            parent=parent,
            # Copied, so the extension can be sent even if its parent is deleted meanwhile.
            parent_remote_id=parent_remote_id,
            kind=Kind.EXTEND if parent else Kind.CREATE,
            status=Status.QUEUED,
            enqueued_at=timezone.now(),
            **request.row_fields(),
        )
        StatusEvent.objects.create(
            generation=gen,
            at=gen.created_at,
            status=Status.QUEUED,
            note=f"extension of {parent.pk}" if parent else "created",
        )
        tasks.wake_submit_on_commit(gen.pk)
    t.plog(gen.pk, "queued kind=%s", gen.kind)
    return gen


def extend_generation(parent: Generation, user: User, request: GenerationRequest) -> Generation:
    return create_generation(user, request, parent=parent)


def retry_generation(gen: Generation, user: User = None) -> Generation:
    """Send a failed or needs-attention generation again: a person's say-so for one more POST.

    For a needs-attention row this may pay twice (the first request may have started a job);
    the page says so before the button is pressed.
    """
    check_can_change(gen, user)
    if gen.status not in RETRYABLE:
        raise ServiceError("Only a failed, cancelled or needs-attention job can be retried.")
    if gen.kind == Kind.EXTEND and (gen.parent is None or not gen.parent.can_extend):
        # A removed parent: its owner deleted it, so no new POST extends it on their behalf.
        raise ServiceError("The video this extends is no longer available to extend.")
    with transaction.atomic():
        if not t.authorise_another_post(
            gen.pk, gen.status, note=f"retry requested by {_who(user)}"
        ):
            raise ServiceError("This job changed in the meantime; reload and try again.")
        tasks.wake_submit_on_commit(gen.pk)
    gen.refresh_from_db()
    return gen


def mark_failed(gen: Generation, user: User = None, note: str = "") -> Generation:
    """A person decides a needs-attention job is not to be sent again."""
    check_can_change(gen, user)
    if not t.fail(
        gen.pk,
        [Status.NEEDS_ATTENTION],
        note=note or f"marked failed by {_who(user)}",
        error=gen.error or "Marked failed by a person",
    ):
        raise ServiceError("Only a job that needs attention can be marked failed.")
    gen.refresh_from_db()
    return gen


def cancel_generation(gen: Generation, user: User = None) -> Generation:
    """Cancel a job that has not been sent yet."""
    check_can_change(gen, user)
    if not t.cancel(gen.pk, note=f"cancelled by {_who(user)}"):
        raise ServiceError("Only a queued job can be cancelled; this one has already been sent.")
    gen.refresh_from_db()
    return gen


def delete_generation(gen: Generation, user: User = None) -> None:
    """Delete a finished, failed or cancelled generation and its local files.

    Jobs in flight cannot be deleted (they are being paid for). A video that others extend can:
    nobody may block its owner's delete by extending it. The extensions keep their own videos
    and say that what they extended was removed (``parent_removed_at``; ``kept_ancestor``
    skips past the removed link so the chain keeps its place); one still queued was given the
    parent's upstream id when it was made, so it is sent all the same, but a retry of one that
    failed is refused. The checks and the delete happen on the locked row, so a retry or an
    extension arriving at the same moment cannot slip in between. A keyframe another row still
    uses (a late answer's row, "generate again") is kept.
    """
    check_can_change(gen, user)
    with transaction.atomic():
        row = Generation.objects.select_for_update().filter(pk=gen.pk).first()
        if row is None:
            return
        if row.status == Status.NEEDS_ATTENTION:
            raise ServiceError("Resolve this job first: retry it or mark it failed.")
        if row.status not in DELETABLE:
            raise ServiceError(
                "A job in flight cannot be deleted; cancel it or wait until it ends."
            )
        kept = row.parent_id or row.kept_ancestor_id  # the nearest ancestor still kept
        row.extensions.update(parent=None, parent_removed_at=timezone.now(), kept_ancestor=kept)
        Generation.objects.filter(kept_ancestor=row).update(kept_ancestor=kept)
        files = [f for f in (row.video_file, row.thumbnail_file) if f]
        files += [f for f in _keyframes(row) if not _keyframe_shared(row, f.name)]
        row.delete()
    for stored in files:
        stored.storage.delete(stored.name)
    t.plog(gen.pk, "deleted by %s", getattr(user, "username", "") or "an operator")


def _keyframes(row: Generation) -> list[Any]:
    return [getattr(row, name) for name in GenerationRequest.uploads() if getattr(row, name)]


def _keyframe_shared(row: Generation, name: str) -> bool:
    others = Generation.objects.exclude(pk=row.pk)
    return any(others.filter(**{field: name}).exists() for field in GenerationRequest.uploads())


def toggle_like(gen: Generation, user: AbstractBaseUser) -> bool:
    """Like or unlike for this user; returns whether it is now liked.

    Decided by the delete itself (it removed a like, or there was none), so two clicks at
    the same moment toggle twice instead of both reading the same state.
    """
    likes = Generation.liked_by.through.objects
    removed, _ = likes.filter(generation_id=gen.pk, user_id=user.pk).delete()
    if removed:
        return False
    likes.get_or_create(generation_id=gen.pk, user_id=user.pk)
    return True


# --- the account hold ----------------------------------------------------------------------------
def is_admin(user: User) -> bool:
    """Who may lift the account hold or cancel everyone's waiting jobs: staff and superusers
    (and the operator, ``user=None``) until the team's roles exist."""
    return user is None or bool(
        getattr(user, "is_superuser", False) or getattr(user, "is_staff", False)
    )


def _check_admin(user: User) -> None:
    if not is_admin(user):
        raise NotAllowed("Only an admin can resume the account or cancel the waiting jobs.")


def resume_account(user: User) -> bool:
    """Lift the account hold now (the credits were topped up, the key fixed): every waiting job
    is sent at once. Returns whether there was a hold. If the account is still refused, the
    first job sent puts it on hold again; nothing is failed."""
    _check_admin(user)
    with transaction.atomic():
        lifted = hold.lift(f"resumed by {_who(user)}")
        if lifted:
            tasks.wake_sweep_on_commit()
    return lifted


def cancel_waiting(user: User) -> int:
    """Cancel every job that waits to be sent (queued, nothing sent for it): for a team that
    would rather not have them go when the account comes back. The hold itself stays until a
    job goes through or an admin resumes. Returns how many were cancelled."""
    _check_admin(user)
    cancelled = 0
    note = f"cancelled with every waiting job by {_who(user)}"
    for pk in Generation.objects.waiting_out_a_hold().values_list("pk", flat=True).iterator():
        cancelled += t.cancel(pk, note=note)
    t.log.info("%s waiting jobs cancelled by %s", cancelled, _who(user))
    return cancelled
