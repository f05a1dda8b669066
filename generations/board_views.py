"""The boards pages: the list (``/boards/``), one board (``/boards/<id>/``) with its grid and its
ZIP, and the board menu every finished video carries (gallery cards, the detail page).

Who may do what is ``generations.boards``'; a board this person does not see answers 404, never
403. Every change is a plain POST that redirects back without JavaScript; with htmx it answers
the fragment to swap (the menu, the board's header) and the middleware adds the toasts.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from zipstream import ZIP_STORED, ZipStream

from generations import actions, boards, mediastore
from generations.htmx import HtmxHttpRequest, htmx_target, next_url
from generations.models import Board, Generation
from generations.templatetags.studio import download_name, short_prompt

YES = ("yes", "on", "true", "1")


def _board_or_404(request: HttpRequest, pk: int) -> Board:
    try:
        return boards.get_visible(request.user, pk)
    except Board.DoesNotExist:
        raise Http404("No such board.") from None


def _label(board: Board) -> str:
    return f"“{short_prompt(board.name, 60)}”"


# --- /boards/ -------------------------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
def board_list(request: HtmxHttpRequest) -> HttpResponse:
    """My boards and the team's shared ones, as tiles; the form that makes a new one."""
    form = {"name": "", "shared": False}
    error = ""
    status = 200
    if request.method == "POST":
        form = {"name": request.POST.get("name", ""), "shared": _ticked(request, "shared")}
        try:
            board = boards.create_board(request.user, form["name"], shared=bool(form["shared"]))
        except actions.ServiceError as exc:
            error, status = str(exc), 400
            messages.error(request, f"The board was not made: {exc}")
        else:
            messages.success(request, f"Made the board {_label(board)}.")
            return redirect("board-detail", pk=board.pk)
    tiles = boards.tiles(request.user)
    context = {
        "mine": [t for t in tiles if t.board.created_by_id == request.user.pk],
        "team": [t for t in tiles if t.board.created_by_id != request.user.pk],
        "form": form,
        "error": error,
        "name_max": boards.NAME_MAX,
    }
    return render(request, "generations/boards.html", context, status=status)


def _ticked(request: HttpRequest, name: str) -> bool:
    return request.POST.get(name, "").lower() in YES


# --- /boards/<id>/ --------------------------------------------------------------------------------
def _board_context(request: HttpRequest, pk: int, **extra: Any) -> dict[str, Any]:
    try:
        tile = boards.tile(request.user, pk)
    except Board.DoesNotExist:
        raise Http404("No such board.") from None
    videos = boards.videos(tile.board, request.user)
    return {
        "tile": tile,
        "board": tile.board,
        "videos": videos,
        "watching": any(not gen.is_settled for gen in videos),  # the grid's watcher polls
        "limit": boards.BOARD_PAGE_LIMIT,
        # Its ZIP would hold something (past the page's limit, the rest may be copied).
        "zippable": len(videos) >= boards.BOARD_PAGE_LIMIT or any(v.video_file for v in videos),
        "name_max": boards.NAME_MAX,
        **extra,
    }


@require_GET
def board_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return render(request, "generations/board.html", _board_context(request, pk))


def _manage(
    request: HtmxHttpRequest, pk: int, change: Any, done: str, *, name_error: bool = False
) -> HttpResponse:
    """Rename or share/unshare: the owner or an admin (others who see it get the reason); the
    header again for htmx, else back to the board."""
    board = _board_or_404(request, pk)
    error = ""
    try:
        change(board)
    except actions.ServiceError as exc:
        error = str(exc)
        messages.error(request, error)
    else:
        messages.success(request, done.format(label=_label(board)))
    if htmx_target(request) == "board-head":
        context = _board_context(request, pk, rename_error=error if name_error else "")
        return render(request, "generations/board_head_answer.html", context)
    if error and name_error:
        context = _board_context(request, pk, rename_error=error)
        return render(request, "generations/board.html", context, status=400)
    return redirect("board-detail", pk=pk)


@require_POST
def board_rename(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    name = request.POST.get("name", "")
    return _manage(
        request,
        pk,
        lambda board: boards.rename(board, request.user, name),
        "Renamed the board to {label}.",
        name_error=True,
    )


@require_POST
def board_sharing(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    shared = _ticked(request, "shared")
    words = "Shared {label} with the team." if shared else "{label} is private again."
    return _manage(request, pk, lambda board: boards.set_shared(board, request.user, shared), words)


@require_POST
def board_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    board = _board_or_404(request, pk)
    label = _label(board)
    try:
        boards.delete_board(board, request.user)
    except actions.ServiceError as exc:
        messages.error(request, str(exc))
        return redirect("board-detail", pk=pk)
    messages.success(request, f"Deleted the board {label}. Its videos are still in the gallery.")
    return redirect("board-list")


# --- the ZIP -------------------------------------------------------------------------------------
def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``stem-2.mp4``, ``stem-3.mp4``… if the ZIP already holds it."""
    stem, dot, ext = name.rpartition(".")
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}" if dot else f"{name}-{n}"
    taken.add(candidate.lower())
    return candidate


def _local_path(gen: Generation) -> str | None:
    """The stored video's path on this machine, or None without a local copy."""
    if not gen.video_file:
        return None
    if mediastore.remote():  # MEDIA_STORAGE=s3: a copy on this machine, streamed once
        return mediastore.local_path(gen.video_file.name)
    try:
        path = gen.video_file.path
    except (NotImplementedError, ValueError):  # a storage without local paths
        return None
    return path if os.path.isfile(path) else None


def _readme(board: Board, left_out: list[Generation], request: HttpRequest) -> bytes:
    lines = [
        f"Board: {board.name}",
        "",
        "These videos of the board have no copy on the lumaweb server yet (still being copied, "
        "or the copy failed), so they are not in this ZIP. Open each one to play or copy it:",
        "",
    ]
    for gen in left_out:
        page = request.build_absolute_uri(reverse("generation-detail", args=[gen.pk]))
        lines.append(f"- {short_prompt(gen.user_prompt, 80)}  ({page})")
    return ("\n".join(lines) + "\n").encode("utf-8")


def board_archive(board: Board, request: HttpRequest) -> ZipStream:
    """The board's copied videos, each named as its download is, stored (they are compressed
    already), written as the response is sent: nothing is built in memory or on disk first.
    Sized, so the answer has a Content-Length and the browser shows progress."""
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    taken: set[str] = set()
    left_out: list[Generation] = []
    for gen in boards.archive_members(board):
        path = _local_path(gen)
        if path is None:
            left_out.append(gen)
            continue
        archive.add_path(path, _unique(download_name(gen), taken), recurse=False)
    if left_out:
        archive.add(_readme(board, left_out, request), _unique("README.txt", taken))
    return archive


@require_GET
def board_zip(request: HtmxHttpRequest, pk: int) -> HttpResponse | StreamingHttpResponse:
    board = _board_or_404(request, pk)
    archive = board_archive(board, request)
    response = StreamingHttpResponse(archive, content_type="application/zip")
    response["Content-Length"] = str(len(archive))
    filename = f"{slugify(board.name) or 'board'}.zip"
    response["Content-Disposition"] = content_disposition_header(True, filename) or "attachment"
    response["Cache-Control"] = "private, no-store"
    return response


# --- a video's board menu -------------------------------------------------------------------------
def _menu(request: HtmxHttpRequest, gen: Generation, *, open_: bool = True) -> HttpResponse:
    context = {"gen": gen, "choices": boards.choices(request.user, gen), "open": open_}
    return render(request, "generations/board_parts.html#pick", context)


@require_GET
def generation_boards(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    """The video's board menu: with htmx the open (or, ``?closed=1``, closed) control in place;
    without JavaScript a small page of the same toggles, with a way back."""
    gen = get_object_or_404(Generation, pk=pk)
    if request.htmx:
        return _menu(request, gen, open_=request.GET.get("closed") != "1")
    back = next_url(request, reverse("generation-detail", args=[pk]))
    context = {"gen": gen, "choices": boards.choices(request.user, gen), "back": back}
    return render(request, "generations/board_pick.html", context)


def _after_change(request: HtmxHttpRequest, gen: Generation) -> HttpResponse:
    if htmx_target(request) == f"board-pick-{gen.pk}":
        return _menu(request, gen)
    if htmx_target(request) == f"card-{gen.pk}":  # "Remove from board" on a board page
        return render(request, "generations/board_parts.html#removed", {"gen": gen})
    return redirect(next_url(request, reverse("generation-detail", args=[gen.pk])))


@require_POST
def generation_board_set(request: HtmxHttpRequest, pk: uuid.UUID, board_pk: int) -> HttpResponse:
    """Put the video on the board (``on=yes``) or take it off (``on=no``). It sets the state
    asked for rather than toggling, so a double click or two people at once agree."""
    gen = get_object_or_404(Generation, pk=pk)
    board = _board_or_404(request, board_pk)
    if _ticked(request, "on"):
        added = boards.add(board, gen, request.user)
        messages.success(
            request, f"Added to {_label(board)}." if added else f"Already on {_label(board)}."
        )
    else:
        removed = boards.remove(board, gen)
        messages.success(
            request, f"Removed from {_label(board)}." if removed else f"Not on {_label(board)}."
        )
    response = _after_change(request, gen)
    if htmx_target(request) == f"card-{gen.pk}":
        response.write(_count_oob(request, board))
    return response


def _count_oob(request: HttpRequest, board: Board) -> str:
    tile = boards.tile(request.user, board.pk)
    return render(
        request, "generations/board.html#count", {"tile": tile, "oob": True}
    ).content.decode()


@require_POST
def generation_board_new(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    """ "New board…" in a video's menu: make the board (private unless ticked) with the video on."""
    gen = get_object_or_404(Generation, pk=pk)
    try:
        board = boards.create_board(
            request.user, request.POST.get("name", ""), shared=_ticked(request, "shared")
        )
    except actions.ServiceError as exc:
        messages.error(request, f"The board was not made: {exc}")
    else:
        boards.add(board, gen, request.user)
        messages.success(request, f"Made the board {_label(board)} with this video on it.")
    return _after_change(request, gen)
