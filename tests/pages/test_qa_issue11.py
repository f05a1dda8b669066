"""What QA of issue 11 (a second provider, Luma's API) found by using the app, pinned."""

from __future__ import annotations

import re

import pytest

from generations.models import Status
from tests.pages.conftest import make_gen


@pytest.fixture
def luma(settings):
    settings.LUMA_PROVIDER = "luma"
    return settings


def _button_notes(html: str) -> list[str]:
    return re.findall(r'<span class="btn-note"[^>]*>([^<]*)</span>', html)


def test_with_luma_the_before_and_interpolate_buttons_price_in_credits(client, luma):
    """The buttons said "71 tokens" under Luma's API, whose unit is credits (the Extend
    button beside them said "71 credits")."""
    gen = make_gen(Status.COMPLETED)
    pages = {
        "detail": client.get(f"/generations/{gen.pk}/").content.decode(),
        "before": client.get(f"/generations/{gen.pk}/before/").content.decode(),
        "interpolate": client.get(f"/generations/{gen.pk}/interpolate/").content.decode(),
    }
    for name, html in pages.items():
        notes = _button_notes(html)
        assert notes, name
        for note in notes:
            assert note.endswith(" credits"), (name, note)
