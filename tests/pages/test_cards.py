"""A card's annotated fields (``queries.with_card_fields``): "liked" is the reader's own like,
the like count is everyone's."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser

from generations import queries
from tests.pages.conftest import make_gen


def test_a_card_is_liked_only_for_the_person_who_liked_it(user, other):
    gen = make_gen(user=other)
    gen.liked_by.add(user)
    mine = queries.card(gen.pk, user)
    theirs = queries.card(gen.pk, other)
    assert (mine.liked, mine.like_count) == (True, 1)
    assert (theirs.liked, theirs.like_count) == (False, 1)


def test_someone_not_logged_in_has_liked_nothing(user):
    gen = make_gen(user=user)
    gen.liked_by.add(user)
    anonymous = AnonymousUser()
    seen = queries.card(gen.pk, anonymous)
    assert (seen.liked, seen.like_count) == (False, 1)
    liked_page = queries.gallery_page(anonymous, queries.GalleryFilters(liked=True))
    assert liked_page.items == []
    assert [g.pk for g in queries.gallery_page(anonymous, queries.GalleryFilters()).items] == [
        gen.pk
    ]
