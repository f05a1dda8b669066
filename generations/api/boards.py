"""Boards over the API: ``/api/v1/boards``, ``/api/v1/boards/<id>`` and its ``items``.

The rules are ``generations.boards``' (the pages' own): a board the caller does not see answers
404 (never 403: a private board's existence is not told), adding and removing is for whoever
sees it, deleting for its owner or an admin (403 for others who see it). Adding a video that
is already there answers 200 with the board, a new one 201; removing one that is not there is
204 all the same: both are idempotent, so a script may simply send again.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from generations import actions, boards
from generations.api.errors import json_error, json_object
from generations.api.serializers import generation_json
from generations.api.views import api_view
from generations.models import Board, Generation

NOT_FOUND = "No such board (or it is someone else's private board)."


def board_json(tile: boards.BoardTile, request: HttpRequest) -> dict[str, Any]:
    board = tile.board
    return {
        "id": board.pk,
        "name": board.name,
        "shared": board.shared,
        "owner": board.created_by.get_username() if board.created_by_id else None,
        "count": tile.count,
        "created_at": board.created_at.isoformat(),
        "updated_at": board.updated_at.isoformat(),
        "url": request.build_absolute_uri(reverse("board-detail", args=[board.pk])),
        "download_url": request.build_absolute_uri(reverse("board-zip", args=[board.pk])),
        "cover": _absolute(tile.cover, request),
        "can_manage": tile.manageable,
    }


def _absolute(url: str, request: HttpRequest) -> str | None:
    if not url:
        return None
    return request.build_absolute_uri(url) if url.startswith("/") else url


def _tile_or_404(request: HttpRequest, pk: int) -> boards.BoardTile | JsonResponse:
    try:
        return boards.tile(request.user, pk)
    except Board.DoesNotExist:
        return json_error(404, NOT_FOUND)


def _create(request: HttpRequest) -> HttpResponse:
    data = json_object(request)
    if isinstance(data, JsonResponse):
        return data
    problems: dict[str, list[str]] = {}
    name, shared = data.get("name"), data.get("shared", False)
    if not isinstance(name, str):
        problems["name"] = ["Must be a string: the board's name."]
    if not isinstance(shared, bool):
        problems["shared"] = ["Must be true or false."]
    if not problems:
        try:
            boards.clean_name(name)
        except boards.BadName as exc:
            problems["name"] = [str(exc)]
    if problems:
        return json_error(400, "Some fields are not valid.", problems)
    board = boards.create_board(request.user, name, shared=shared)
    return JsonResponse(board_json(boards.tile(request.user, board.pk), request), status=201)


@api_view("GET", "POST")
def board_collection(request: HttpRequest) -> HttpResponse:
    """``GET``: every board the caller sees; ``POST {"name", "shared"}``: a new board, 201."""
    if request.method == "POST":
        return _create(request)
    return JsonResponse(
        [board_json(tile, request) for tile in boards.tiles(request.user)], safe=False
    )


@api_view("GET", "DELETE")
def board_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """``GET``: the board with its ``generations`` (the API's shape, most recently added first);
    ``DELETE``: the board goes (its owner or an admin), its videos stay: 204."""
    tile = _tile_or_404(request, pk)
    if isinstance(tile, JsonResponse):
        return tile
    if request.method == "DELETE":
        try:
            boards.delete_board(tile.board, request.user)
        except actions.NotAllowed as exc:
            return json_error(403, str(exc))
        return HttpResponse(status=204)
    answer = board_json(tile, request)
    answer["generations"] = [
        generation_json(gen, request) for gen in boards.videos(tile.board, request.user)
    ]
    return JsonResponse(answer)


@api_view("POST")
def board_items(request: HttpRequest, pk: int) -> HttpResponse:
    """``POST {"generation_id"}``: put the video on the board: 201 when added, 200 when it was
    there already; either way the board (without its generations) is the answer."""
    tile = _tile_or_404(request, pk)
    if isinstance(tile, JsonResponse):
        return tile
    data = json_object(request)
    if isinstance(data, JsonResponse):
        return data
    raw = data.get("generation_id")
    try:
        gen_id = uuid.UUID(raw) if isinstance(raw, str) else None
    except ValueError:
        gen_id = None
    if gen_id is None:
        reason = "Must be a generation's id (a UUID string)."
        return json_error(400, "Some fields are not valid.", {"generation_id": [reason]})
    if not Generation.objects.filter(pk=gen_id).exists():
        reason = "No generation has this id."
        return json_error(400, "Some fields are not valid.", {"generation_id": [reason]})
    added = boards.add(tile.board, gen_id, request.user)
    fresh = boards.tile(request.user, pk)
    return JsonResponse(board_json(fresh, request), status=201 if added else 200)


@api_view("DELETE")
def board_item(request: HttpRequest, pk: int, generation_id: uuid.UUID) -> HttpResponse:
    """Take the video off the board: 204, whether it was on it or not."""
    tile = _tile_or_404(request, pk)
    if isinstance(tile, JsonResponse):
        return tile
    boards.remove(tile.board, generation_id)
    return HttpResponse(status=204)
