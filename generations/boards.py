"""Boards: named collections of videos, and who may do what with them.

The rules, in one place for the pages, the API and the ZIP:

- a private board is seen by its owner only; to anyone else it does not exist (the pages and the
  API answer 404, never 403, so its name and existence do not leak), admins included;
- a shared board is seen by the whole team;
- whoever sees a board may add and remove its videos (viewers too: they watch, like, download
  and organise; a board costs nothing);
- only its owner or an admin renames it, shares or unshares it, or deletes it; unsharing
  revokes the public links others made to it (``shares.revoke_others_on_unshare``);
- deleting a board deletes its items, never a video; deleting a video takes it off every board.

Every read here is a fixed number of queries, whatever the number of boards or videos.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import (
    Count,
    Exists,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from generations import actions, queries, shares
from generations.models import Board, BoardItem, Generation

if TYPE_CHECKING:
    from generations.actions import User
    from generations.queries import Card, Viewer

NAME_MAX = Board._meta.get_field("name").max_length or 100
BOARD_PAGE_LIMIT = 500  # videos one board page shows (the most recently added first)


class BadName(actions.ServiceError):
    """A board name that is empty or too long; the message says which."""


def clean_name(raw: object) -> str:
    """A board's name as typed, tidied: control characters dropped, runs of spaces made one,
    trimmed; refused when empty or longer than the column."""
    text = "".join(ch for ch in str(raw or "") if ch.isprintable())
    name = " ".join(text.split())
    if not name:
        raise BadName("Give the board a name.")
    if len(name) > NAME_MAX:
        raise BadName(f"A board's name is at most {NAME_MAX} characters ({len(name)} given).")
    return name


# --- who sees, who manages ------------------------------------------------------------------------
def visible(user: Viewer) -> QuerySet[Board]:
    """The boards this person sees: their own, and every shared one."""
    return Board.objects.visible_to(user)


def get_visible(user: Viewer, pk: int) -> Board:
    """The board ``pk`` if this person sees it; ``Board.DoesNotExist`` otherwise (whether it is
    missing or someone else's private board: the caller answers 404 for both)."""
    return visible(user).select_related("created_by").get(pk=pk)


def may_manage(board: Board, user: User) -> bool:
    """Rename, share or unshare, delete: the owner, or an admin (who sees the board)."""
    if user is None or not user.is_authenticated:
        return False
    return board.created_by_id == user.pk or actions.is_admin(user)


def check_can_manage(board: Board, user: User) -> None:
    if not may_manage(board, user):
        raise actions.NotAllowed(
            "Only the person who made this board, or an admin, can rename, share or delete it."
        )


# --- changes --------------------------------------------------------------------------------------
def create_board(user: User, name: object, *, shared: bool = False) -> Board:
    if user is None or not user.is_authenticated:
        raise actions.NotAllowed("Log in to make a board.")
    return Board.objects.create(name=clean_name(name), shared=shared, created_by=user)


def rename(board: Board, user: User, name: object) -> Board:
    check_can_manage(board, user)
    board.name = clean_name(name)
    board.updated_at = timezone.now()
    board.save(update_fields=["name", "updated_at"])
    return board


def set_shared(board: Board, user: User, shared: bool) -> Board:
    """Share with the team or make private again. Private again: the links others made to it
    are revoked in the same transaction (they can no longer see the board, so neither may the
    public through them); its owner's own links stay."""
    check_can_manage(board, user)
    with transaction.atomic():
        Board.objects.filter(pk=board.pk).update(shared=shared)  # locks the row: see share_board
        board.shared = shared
        if not shared:
            shares.revoke_others_on_unshare(board, user)
    return board


def delete_board(board: Board, user: User) -> None:
    """The board and its items go; the videos stay where they are."""
    check_can_manage(board, user)
    board.delete()


def add(board: Board, gen: Generation | uuid.UUID, user: User) -> bool:
    """Put the video on the board; True if it was added, False if it was there already. Safe
    when two people add the same video at the same moment: the unique constraint decides."""
    gen_id = gen.pk if isinstance(gen, Generation) else gen
    added_by = user if user is not None and user.is_authenticated else None
    try:
        with transaction.atomic():
            _, created = BoardItem.objects.get_or_create(
                board=board, generation_id=gen_id, defaults={"added_by": added_by}
            )
    except IntegrityError:  # the other request's INSERT won the race: it is there
        created = False
    if created:
        Board.objects.filter(pk=board.pk).update(updated_at=timezone.now())
    return created


def remove(board: Board, gen: Generation | uuid.UUID) -> bool:
    """Take the video off the board; True if it was on it. Removing twice is harmless."""
    gen_id = gen.pk if isinstance(gen, Generation) else gen
    removed, _ = BoardItem.objects.filter(board=board, generation_id=gen_id).delete()
    if removed:
        Board.objects.filter(pk=board.pk).update(updated_at=timezone.now())
    return bool(removed)


# --- reads ----------------------------------------------------------------------------------------
def _item_count() -> Coalesce:
    counted = (
        BoardItem.objects.filter(board_id=OuterRef("pk"))
        .order_by()
        .annotate(_one=Value(1, output_field=IntegerField()))
        .values("_one")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _thumbnail_url(stored: str | None, remote: str | None) -> str:
    """A thumbnail's address as ``Generation.display_thumbnail_url`` gives it: the local copy,
    else the upstream's."""
    if stored:
        return Generation._meta.get_field("thumbnail_file").storage.url(stored)
    return remote or ""


@dataclass(frozen=True)
class BoardTile:
    """A board as the boards page and the API list it."""

    board: Board
    count: int
    cover: str  # the latest added video's thumbnail ("" for the placeholder: nothing to show)
    manageable: bool

    @property
    def pk(self) -> int:
        return self.board.pk


def with_tile_fields(boards: QuerySet[Board]) -> QuerySet[Board]:
    """The count and the cover's two columns, in the boards' own query. The cover is the
    thumbnail of the most recently added video that has one (a job still running has none)."""
    latest = (
        BoardItem.objects.filter(board_id=OuterRef("pk"))
        .exclude(generation__thumbnail_file="", generation__thumbnail_url="")
        .order_by("-added_at", "-id")
    )
    return boards.select_related("created_by").annotate(
        item_count=_item_count(),
        cover_file=Subquery(latest.values("generation__thumbnail_file")[:1]),
        cover_remote=Subquery(latest.values("generation__thumbnail_url")[:1]),
    )


def _tile(board: Board, user: User, admin: bool) -> BoardTile:
    return BoardTile(
        board=board,
        count=board.item_count,  # type: ignore[attr-defined]
        cover=_thumbnail_url(board.cover_file, board.cover_remote),  # type: ignore[attr-defined]
        manageable=user is not None and (board.created_by_id == user.pk or admin),
    )


def tiles(user: Viewer) -> list[BoardTile]:
    """Every board this person sees, most recently changed first (two queries: the boards, and
    whether the person is an admin)."""
    rows = list(with_tile_fields(visible(user)).order_by("-updated_at", "-id"))
    admin = bool(rows) and actions.is_admin(user)  # type: ignore[arg-type]
    return [_tile(board, user, admin) for board in rows]  # type: ignore[arg-type]


def tile(user: Viewer, pk: int) -> BoardTile:
    """One board this person sees, with its count and cover (``Board.DoesNotExist``)."""
    board = with_tile_fields(visible(user)).get(pk=pk)
    return _tile(board, user, may_manage(board, user))  # type: ignore[arg-type]


def _on_board(board: Board) -> QuerySet[BoardItem]:
    return BoardItem.objects.filter(board_id=board.pk)


def videos(board: Board, user: Viewer, limit: int = BOARD_PAGE_LIMIT) -> list[Card]:
    """The board's videos with the card fields, most recently added first (one query)."""
    added = _on_board(board).filter(generation_id=OuterRef("pk"))
    query = queries.with_card_fields(
        Generation.objects.filter(pk__in=_on_board(board).values("generation_id")), user
    ).annotate(added_at=Subquery(added.values("added_at")[:1]))
    return list(query.order_by("-added_at", "-pk")[:limit])


def archive_members(board: Board) -> list[Generation]:
    """What the board's ZIP holds: its videos, oldest added first (one query)."""
    added = _on_board(board).filter(generation_id=OuterRef("pk"))
    query = Generation.objects.filter(pk__in=_on_board(board).values("generation_id"))
    return list(
        query.annotate(added_at=Subquery(added.values("added_at")[:1]))
        .only("pk", "user_prompt", "video_file", "status")
        .order_by("added_at", "pk")
    )


@dataclass(frozen=True)
class Choice:
    """One board in a video's board menu: whether the video is on it."""

    board: Board
    on: bool


def choices(user: Viewer, gen: Generation) -> list[Choice]:
    """The boards this person sees, each with whether ``gen`` is on it: the video's board menu
    (one query). The person's own boards first, then the shared ones, newest changed first."""
    if not user.is_authenticated:
        return []
    rows = (
        visible(user)
        .select_related("created_by")
        .annotate(on=Exists(BoardItem.objects.filter(board_id=OuterRef("pk"), generation=gen)))
        .order_by("-updated_at", "-id")
    )
    mine = [Choice(board, board.on) for board in rows]
    mine.sort(key=lambda choice: choice.board.created_by_id != user.pk)  # stable: own first
    return mine
