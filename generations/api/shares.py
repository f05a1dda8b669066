"""Share links over the API: make one for a video or a board, revoke one, list them.

``POST /api/v1/generations/<id>/share`` and ``POST /api/v1/boards/<id>/share`` with
``{"expires_in_days": 1..365 | null, "show_prompts": bool}`` answer 201 with the link's
absolute ``url``, its ``token`` and ``expires_at``; ``DELETE /api/v1/shares/<token>`` revokes
(204, also when it already was; the maker, the board's owner or an admin); ``GET /api/v1/shares``
lists the caller's (everyone's for an admin), a link to a board the caller cannot see without
its token, url or board id. Who may share and revoke is ``generations.shares``' decision, as on
the pages.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404

from generations import shares
from generations.api.errors import json_error, json_object
from generations.api.views import api_view
from generations.models import Generation, ShareLink

SHARE_FIELDS = ("expires_in_days", "show_prompts")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def link_json(request: HttpRequest, link: ShareLink, *, everyone: bool = False) -> dict[str, Any]:
    """One link. A link to a board the caller cannot see (someone's private board) names
    neither the board nor the link: ``token``, ``url`` and ``board_id`` are null and
    ``hidden`` says what it was ("a board you can no longer see", "a private board of ...")."""
    hidden = shares.hidden_label(request.user, link, everyone=everyone)
    return {
        "token": None if hidden else link.token,
        "url": None if hidden else shares.url_of(request, link),
        "hidden": hidden,
        "kind": "generation" if link.generation_id else "board",
        "generation_id": str(link.generation_id) if link.generation_id else None,
        "board_id": None if hidden else link.board_id,
        "show_prompts": link.show_prompts,
        "created_by": link.created_by.get_username() if link.created_by_id else None,
        "created_at": _iso(link.created_at),
        "expires_at": _iso(link.expires_at),
        "revoked_at": _iso(link.revoked_at),
        "views": link.views,
        "last_viewed_at": _iso(link.last_viewed_at),
        "status": shares.status_of(link),
    }


def _share_request(request: HttpRequest) -> shares.ShareRequest | JsonResponse:
    """The body, checked: each problem named by its field (400)."""
    data = json_object(request)
    if isinstance(data, JsonResponse):
        return data
    problems: dict[str, list[str]] = {}
    days = data.get("expires_in_days")
    if days is not None and (
        isinstance(days, bool)
        or not isinstance(days, int)
        or not 1 <= days <= shares.MAX_EXPIRY_DAYS
    ):
        problems["expires_in_days"] = [
            f"Must be a whole number of days from 1 to {shares.MAX_EXPIRY_DAYS}, "
            "or null for a link that never expires."
        ]
    show = data.get("show_prompts", False)
    if not isinstance(show, bool):
        problems["show_prompts"] = ["Must be true or false."]
    unknown = sorted(set(data) - set(SHARE_FIELDS))
    for name in unknown:
        problems[name] = [f"Unknown field: a share takes {' and '.join(SHARE_FIELDS)}."]
    if problems:
        return json_error(400, "Some fields are not valid.", problems)
    return shares.ShareRequest(expires_in_days=days, show_prompts=show)


def _created(request: HttpRequest, link: ShareLink) -> JsonResponse:
    body = {
        "url": shares.url_of(request, link),
        "token": link.token,
        "expires_at": _iso(link.expires_at),
        "show_prompts": link.show_prompts,
    }
    return JsonResponse(body, status=201)


@api_view("POST")
def generation_share(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    gen = get_object_or_404(Generation, pk=pk)
    asked = _share_request(request)
    if isinstance(asked, JsonResponse):
        return asked
    try:
        link = shares.share_generation(request.user, gen, asked)
    except shares.ViewersDoNotPublish as exc:
        return json_error(403, str(exc))
    except shares.ShareRefused as exc:
        return json_error(409, str(exc))
    return _created(request, link)


@api_view("POST")
def board_share(request: HttpRequest, pk: int) -> HttpResponse:
    board = get_object_or_404(shares.visible_boards(request.user), pk=pk)
    asked = _share_request(request)
    if isinstance(asked, JsonResponse):
        return asked
    try:
        link = shares.share_board(request.user, board, asked)
    except shares.ShareRefused as exc:
        return json_error(403, str(exc))
    return _created(request, link)


@api_view("DELETE")
def share_detail(request: HttpRequest, token: str) -> HttpResponse:
    query = ShareLink.objects.select_related("board")
    link = query.filter(token=token[: shares.MAX_TOKEN + 1]).first()
    if link is None:
        return json_error(404, "Not found.")
    try:
        shares.revoke(request.user, link)
    except shares.NotYours as exc:
        return json_error(403, str(exc))
    return HttpResponse(status=204)


@api_view("GET")
def shares_collection(request: HttpRequest) -> HttpResponse:
    everyone = shares.is_admin(request.user)
    links = shares.links_for(request.user, everyone=everyone)
    rows = [link_json(request, link, everyone=everyone) for link in links]
    return JsonResponse({"shares": rows})
