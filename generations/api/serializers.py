"""lumaweb's JSON shape of a generation, for the API's caller (the shape itself: ``shapes``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

from generations.shapes import generation_shape

if TYPE_CHECKING:
    from generations.queries import Card


def generation_json(gen: Card, request: HttpRequest) -> dict[str, Any]:
    """``gen`` comes from ``queries.with_card_fields`` (or ``queries.card``): ``liked`` is the
    caller's own like, and the counts are annotated, so nothing here queries per row."""

    def absolute(url: str) -> str | None:
        if not url:
            return None
        return request.build_absolute_uri(url) if url.startswith("/") else url

    return generation_shape(
        gen,
        absolute,
        liked=gen.liked,
        like_count=gen.like_count,
        extension_count=gen.extension_count,
    )
