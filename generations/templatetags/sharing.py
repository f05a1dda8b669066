"""The Share panel's data, so that ``{% include "generations/share_panel.html" with
generation=gen %}`` (or ``with board=board``) works on any page without its view's help."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from generations import shares
from generations.models import Board, Generation

register = template.Library()


@register.simple_tag(takes_context=True)
def share_panel(
    context: template.Context, generation: Generation | None = None, board: Board | None = None
) -> dict[str, Any]:
    """What the panel shows: where it posts, its id, the expiry choices, and the thing's live
    links (everyone's: the team should know what is public), each with its URL and whether
    this person may revoke it. One query."""
    request = context["request"]
    user = request.user
    # An include with only one of the two leaves the other unset, which a template passes as "".
    generation = generation or None
    board = board or None
    if generation is not None:
        action = reverse("generation-share", args=[generation.pk])
        key = f"gen-{generation.pk}"
    elif board is not None:
        action = reverse("board-share", args=[board.pk])
        key = f"board-{board.pk}"
    else:
        return {}
    if not shares.may_share(user):  # viewers do not publish: no panel at all
        return {}
    links = shares.live_links_of(generation=generation, board=board)
    return {
        "action": action,
        "id": f"share-{key}",
        "choices": list(shares.EXPIRY_CHOICES.items()),
        "next": request.get_full_path(),
        "links": [
            {
                "link": link,
                "url": shares.url_of(request, link),
                "may_revoke": shares.may_revoke(user, link),
                "mine": link.created_by_id == user.pk,
            }
            for link in links
        ],
    }
