"""Share links: read-only public pages for one video or one board (``ShareLink``).

What people do with them (make, revoke) and what the public page reads (the live link behind a
token, the videos it shows, whether a video belongs to it), in one place for the pages, the API
and the public view. Who may share: a creator or an admin (never a viewer: publishing outside the
team is not read-only) who can see the thing (a video: all of them; a private board: its owner;
a shared board: the team). Who may revoke: the link's maker, an admin,
or (a board's link) the board's owner. Making a board private again revokes every live link to it
made by someone other than its owner (``revoke_others_on_unshare``): they can no longer see it.
A link to a board the person cannot see is listed without the board's name or the link's token
(``hidden_label``).

The token is the only key to the page, so it is never logged (``ShareLink.__repr__`` hides it,
``generations.redact`` blanks ``/s/<token>`` in every log line) and never put in a URL of the
studio (links are revoked by their id).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from generations import audit
from generations.models import (
    AuditAction,
    Board,
    BoardItem,
    Generation,
    Member,
    Role,
    ShareLink,
    Status,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.models import User as Account

    User = Account | AnonymousUser

# What the Share panel offers: its form's values and labels (days; "never": no expiry).
EXPIRY_CHOICES = {"never": "Never", "1": "In 1 day", "7": "In 7 days", "30": "In 30 days"}
MAX_EXPIRY_DAYS = 365  # what the API accepts
MAX_TOKEN = 64  # the column's length: a longer "token" is not looked up
VIEWERS_DO_NOT_PUBLISH = (
    "Viewers cannot make public share links: publishing outside the team is for creators and "
    "admins. Ask an admin to make you a creator."
)


class ShareRefused(Exception):
    """A share or a revoke that is not allowed; the message says why (pages and the API)."""


class ViewersDoNotPublish(ShareRefused):
    """A viewer asked for a public link (the pages' and the API's 403)."""


class NotYours(ShareRefused):
    """Someone who neither made the link nor is an admin tried to revoke it (the API's 403)."""


def is_admin(user: User) -> bool:
    """The team's admins (superusers are) and staff, as for changing someone else's job."""
    if not user.is_authenticated:
        return False
    return bool(getattr(user, "is_staff", False) or Member.role_of(user) == Role.ADMIN)


def may_share(user: User) -> bool:
    """Making a public link publishes outside the team: creators and admins only. Viewers are
    read-only members (they watch, like, download and organise boards inside the team)."""
    if not user.is_authenticated:
        return False
    return is_admin(user) or Member.role_of(user) != Role.VIEWER


def check_can_share(user: User) -> None:
    if not may_share(user):
        raise ViewersDoNotPublish(VIEWERS_DO_NOT_PUBLISH)


def visible_boards(user: User) -> QuerySet[Board]:
    """The boards this person can see: their own, and every shared one (the boards' one rule)."""
    return Board.objects.visible_to(user)


@dataclass(frozen=True)
class ShareRequest:
    """What a person asks for: how long the link lives and whether it shows the prompts."""

    expires_in_days: int | None = None
    show_prompts: bool = False

    def expires_at(self) -> datetime | None:
        if self.expires_in_days is None:
            return None
        return timezone.now() + timedelta(days=self.expires_in_days)


def _person(user: User) -> int:
    """The sharer's id (a stranger never reaches here: the pages and the API need a login)."""
    if user.pk is None:
        raise ShareRefused("Log in to share.")
    return int(user.pk)


def share_generation(user: User, gen: Generation, asked: ShareRequest) -> ShareLink:
    """A link to one video (a creator or an admin may share any video: they see all of them)."""
    check_can_share(user)
    if gen.status != Status.COMPLETED:
        raise ShareRefused("Only a finished video can be shared.")
    with transaction.atomic():
        link = ShareLink.objects.create(
            generation=gen,
            created_by_id=_person(user),
            show_prompts=asked.show_prompts,
            expires_at=asked.expires_at(),
        )
        _audit_made(user, link, "a video")
    return link


def _audit_made(user: User, link: ShareLink, what: str) -> None:
    """The audit entry of a new link: by id, never its token (the token is the key)."""
    audit.record(
        user,
        AuditAction.SHARE_MADE,
        f"Made a public link to {what}"
        + (f", expiring {link.expires_at:%Y-%m-%d %H:%M}" if link.expires_at else ""),
        generation=link.generation_id,
        details={"link": link.pk, "board": link.board_id, "show_prompts": link.show_prompts},
    )


def share_board(user: User, board: Board, asked: ShareRequest) -> ShareLink:
    """A link to a board. The caller found it through ``visible_boards`` (a private board of
    someone else's is "not found", never "not allowed": its existence is not told)."""
    check_can_share(user)
    with transaction.atomic():
        # Read the board again under its row lock: an unshare at the same moment either comes
        # first (and this is refused) or after (and revokes this link).
        locked = Board.objects.select_for_update().filter(pk=board.pk)
        row = locked.values("shared", "created_by_id").first()
        if row is None:
            raise ShareRefused("That board no longer exists.")
        if not row["shared"] and row["created_by_id"] != user.pk:
            raise ShareRefused("Only its owner can share a private board.")
        link = ShareLink.objects.create(
            board=board,
            created_by_id=_person(user),
            show_prompts=asked.show_prompts,
            expires_at=asked.expires_at(),
        )
        _audit_made(user, link, "a board")  # not its name: it may be private
        return link


def revoke(user: User, link: ShareLink) -> bool:
    """Revoke now (its page and videos answer 404 from the next request). True if this call
    revoked it, False if it already was (revoking twice is harmless)."""
    if not may_revoke(user, link):
        raise NotYours(
            "Only the person who made this link, the board's owner or an admin can revoke it."
        )
    now = timezone.now()
    with transaction.atomic():
        live = ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True)
        changed = live.update(revoked_at=now)
        if changed:
            link.revoked_at = now
            maker = link.created_by_id
            audit.record(
                user,
                AuditAction.SHARE_REVOKED,
                "Revoked a public link" + ("" if maker == user.pk else " someone else made"),
                generation=link.generation_id,
                details={"links": [link.pk], "board": link.board_id, "made_by": maker},
            )
    return bool(changed)


def links_for(user: User, *, everyone: bool = False) -> QuerySet[ShareLink]:
    """The Shared links page and ``GET /api/v1/shares``: the person's own links (everyone's for
    an admin who asks), newest first, with what each shows, in one query."""
    query = ShareLink.objects.select_related("generation", "board__created_by", "created_by")
    if everyone and is_admin(user):
        return query
    return query.filter(created_by=user.pk)


def live_links_of(*, generation: Generation | None = None, board: Board | None = None) -> list:
    """The live links of one video or one board (the Share panel lists them, everyone's)."""
    query = ShareLink.objects.live().select_related("created_by", "board")
    if generation is not None:
        return list(query.filter(generation=generation))
    if board is not None:
        return list(query.filter(board=board))
    return []


def status_of(link: ShareLink, now: datetime | None = None) -> str:
    if link.revoked_at is not None:
        return "revoked"
    return "live" if link.is_live(now) else "expired"


def may_revoke(user: User, link: ShareLink) -> bool:
    """The link's maker, an admin, or the owner of the board it shows (the board is loaded
    with the link: ``select_related("board")``)."""
    if user.pk is None:
        return False
    if link.created_by_id == user.pk or is_admin(user):
        return True
    board = link.board if link.board_id is not None else None
    return board is not None and board.created_by_id == user.pk


def hidden_label(user: User, link: ShareLink, *, everyone: bool = False) -> str | None:
    """None when this person may see what the link shows; else what the lists say in place of
    the board's name (and they show neither its URL nor its token): a private board of
    someone else's is not told, admins included (``boards``' rule)."""
    board = link.board if link.board_id is not None else None
    if board is None or board.shared or board.created_by_id == user.pk:
        return None
    if everyone and link.created_by_id != user.pk:
        owner = board.created_by.get_username() if board.created_by_id else "someone"
        return f"a private board of {owner}"
    return "a board you can no longer see"


def revoke_others_on_unshare(board: Board, user: User | None) -> int:
    """The board has just become private: end every live link to it made by someone other
    than its owner (they no longer see it). Call it in the unshare's transaction; returns how
    many were revoked (and records them in the audit log, when there were any)."""
    others = ShareLink.objects.live().filter(board=board).exclude(created_by_id=board.created_by_id)
    ids = list(others.values_list("pk", flat=True))
    if not ids:
        return 0
    ShareLink.objects.filter(pk__in=ids).update(revoked_at=timezone.now())
    audit.record(
        user,
        AuditAction.SHARE_REVOKED,
        f"Revoked {len(ids)} public link{'s' if len(ids) != 1 else ''} to a board made private",
        details={"links": ids, "board": board.pk},
    )
    return len(ids)


def url_of(request: HttpRequest, link: ShareLink) -> str:
    """The link's absolute address: on ``PUBLIC_BASE_URL`` when it is set (the address people
    outside reach lumaweb at), else on the address this request came to."""
    path = reverse("share-page", args=[link.token])
    base = settings.PUBLIC_BASE_URL
    return base + path if base else request.build_absolute_uri(path)


# --- the public page ------------------------------------------------------------------------------
def live_link(token: str) -> ShareLink | None:
    """The live link behind a token, or None (unknown, expired and revoked alike)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    return ShareLink.objects.live().select_related("board").filter(token=token).first()


def count_view(link: ShareLink) -> None:
    """One more view, in a single UPDATE (no read-modify-write: views at once all count)."""
    ShareLink.objects.filter(pk=link.pk).update(views=F("views") + 1, last_viewed_at=timezone.now())


def _playable() -> Q:
    return Q(status=Status.COMPLETED) & ~Q(video_file="")


def shown_videos(link: ShareLink) -> list[Generation]:
    """What the page shows: the video, or the board's videos (newest on the board first), those
    finished with a local copy (the page serves nothing else)."""
    if link.generation_id is not None:
        return list(Generation.objects.filter(_playable(), pk=link.generation_id))
    assert link.board_id is not None  # one of the two is set (the table's check constraint)
    items = (
        BoardItem.objects.filter(board_id=link.board_id)
        .filter(generation__status=Status.COMPLETED)
        .exclude(generation__video_file="")
        .select_related("generation")
        .order_by("-added_at", "-id")
    )
    return [item.generation for item in items]


def shown_video(link: ShareLink, generation_id: uuid.UUID) -> Generation | None:
    """The generation if the link shows it now (the video itself, or on the board now)."""
    query = Generation.objects.filter(_playable(), pk=generation_id)
    if link.generation_id is not None:
        query = query.filter(pk=link.generation_id)
    elif link.board_id is not None:
        query = query.filter(board_items__board_id=link.board_id)
    return query.first()
