"""Issue 11: chains follow generation keyframes in both directions.

A reverse extension ("what came before") hangs off its parent in the tree but plays BEFORE it;
an interpolation hangs off its first source and plays into its second (``end_parent``), whose
own page says it is reached that way. The tree (with the interpolations into a video) is still
one query whatever its depth, ``chain.mp4`` joins the clips in playback order (checked frame by
frame), its cache name changes with the order and kinds, and deleting either source of an
interpolation leaves it intact. Rows are made directly (no upstream needed); the clips are real
MP4s drawn as the simulator draws them (``tests.pages.test_chains.clip``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from generations import actions, chain_files, chains
from generations.models import Generation, Kind
from tests.factories import make_user
from tests.pages.conftest import make_gen
from tests.pages.test_chains import clip

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(db):
    return make_user("dana", password="dana-pass-123")


@pytest.fixture
def client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def media(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def ids(gens) -> list[object]:
    return [g.pk for g in gens]


def plays(gen: Generation) -> list[object]:
    return ids(chains.path_clips(Generation.objects.get(pk=gen.pk)))


def reverse(parent, **fields):
    return make_gen(parent=parent, kind=Kind.REVERSE, **fields)


def interpolation(start, end, **fields):
    return make_gen(
        parent=start,
        end_parent=end,
        end_parent_remote_id=end.remote_id or "",
        kind=Kind.INTERPOLATE,
        **fields,
    )


# --- the order things play in --------------------------------------------------------------------
def test_a_reverse_extension_plays_before_its_parent_and_keeps_its_parents_future(user):
    a = make_gen(user=user, user_prompt="A")
    v = make_gen(user=user, parent=a, kind=Kind.EXTEND, user_prompt="V")
    r = reverse(v, user=user, user_prompt="R")  # ends where V begins
    r2 = reverse(r, user=user, user_prompt="R2")  # ends where R begins
    e = make_gen(user=user, parent=r, kind=Kind.EXTEND, user_prompt="E")  # continues R instead of V

    assert plays(v) == [a.pk, v.pk]
    assert plays(r) == [r.pk, v.pk]  # R, then V: not A (A is another way into V)
    assert plays(r2) == [r2.pk, r.pk, v.pk]
    assert plays(e) == [r.pk, e.pk]  # E replaces V after R

    tree = chains.tree(r)
    assert ids(n.gen for n in tree.current.path()) == [a.pk, v.pk, r.pk]  # the tree: under V
    assert tree.current.direction == chains.BEFORE
    assert [n.direction for n in tree.nodes] == ["", "after", "before", "before", "after"]
    assert tree.current.several_videos


def test_an_interpolation_runs_from_its_first_source_into_its_second(user):
    a = make_gen(user=user, user_prompt="A")
    b = make_gen(user=user, user_prompt="B")  # another chain altogether
    b2 = make_gen(user=user, parent=b, user_prompt="after B")
    i = interpolation(a, b, user=user, user_prompt="I")
    before_i = reverse(i, user=user, user_prompt="before I")

    assert plays(i) == [a.pk, i.pk, b.pk]  # B's clip, not B's own further chain
    assert plays(before_i) == [before_i.pk, i.pk, b.pk]
    tree = chains.tree(i)
    assert ids(n.gen for n in tree.nodes) == [a.pk, i.pk, before_i.pk]  # B is not in A's tree
    assert tree.current.direction == chains.BETWEEN and tree.current.end.pk == b.pk
    # B's side: reached from A by I, found by the same one query; B's tree is still B's.
    theirs = chains.tree(b)
    assert ids(theirs.arrivals) == [i.pk] and theirs.arrivals[0].parent.pk == a.pk
    assert ids(n.gen for n in theirs.nodes) == [b.pk, b2.pk] and theirs.shown
    alone = make_gen(user=user)
    assert not chains.tree(alone).shown
    # An interpolation between two videos of one tree.
    inner = interpolation(b, b2, user=user)
    assert plays(inner) == [b.pk, inner.pk, b2.pk]
    assert ids(chains.tree(b2).arrivals) == [inner.pk]
    assert inner.pk in ids(n.gen for n in chains.tree(b2).nodes)


def test_a_service_whose_extensions_hold_their_parent_still_puts_what_came_before_first(
    settings, user
):
    settings.LUMA_EXTENSION_CONTAINS_PARENT = True
    a = make_gen(user=user)
    v = make_gen(user=user, parent=a, kind=Kind.EXTEND)
    r = reverse(v, user=user)
    assert plays(v) == [v.pk]  # V's video holds A's
    assert plays(r) == [r.pk, v.pk]  # a reverse extension is a new clip of its own


def test_the_tree_with_both_directions_is_one_query_however_deep(user):
    def deep(n: int):
        link = make_gen(user=user)
        end = make_gen(user=user)  # the video the interpolations run into
        for step in range(n):
            kind = (Kind.EXTEND, Kind.REVERSE, Kind.INTERPOLATE)[step % 3]
            extra = {"end_parent": end} if kind == Kind.INTERPOLATE else {}
            link = make_gen(user=user, parent=link, kind=kind, **extra)
            if step % 4 == 0:
                interpolation(link, end, user=user)  # a branch into `end`
        return link, end

    counts = []
    for depth in (3, 20):
        leaf, end = deep(depth)
        for gen in (leaf, end):
            with CaptureQueriesContext(connection) as ctx:
                tree = chains.tree(gen)
                tree.current.clips()
                [(n.direction, n.end and n.end.user_prompt) for n in tree.nodes]
                [(a.parent and a.parent.user_prompt) for a in tree.arrivals]
            counts.append(len(ctx.captured_queries))
        assert chains.tree(leaf).depth == depth + 1
        assert len(chains.tree(end).arrivals) == depth // 3 + (depth + 3) // 4
    assert counts == [1, 1, 1, 1]


# --- one MP4, in playback order ------------------------------------------------------------------
def frames_of(path: Path | str) -> list[str]:
    """A digest of every decoded frame's pixels, in order."""
    with av.open(str(path)) as container:
        return [
            hashlib.blake2s(b"".join(bytes(p) for p in frame.planes)).hexdigest()
            for frame in container.decode(container.streams.video[0])
        ]


def downloaded(client, gen, tmp_path: Path) -> list[str]:
    response = client.get(f"/generations/{gen.pk}/chain.mp4")
    assert response.status_code == 200, response
    out = tmp_path / f"got-{gen.pk.hex[:6]}.mp4"
    out.write_bytes(b"".join(response.streaming_content))
    return frames_of(out)


def made(user, prompt: str, seconds: float = 0.5, **fields):
    return make_gen(user=user, user_prompt=prompt, video_file=clip(prompt, seconds), **fields)


def own(media: Path, gen) -> list[str]:
    return frames_of(media / gen.video_file.name)


def test_chain_mp4_plays_what_came_before_first_and_an_interpolation_between(
    client, user, media, tmp_path
):
    a = made(user, "the first shot")
    v = made(user, "the second shot", parent=a, kind=Kind.EXTEND)
    r = made(user, "what came before the second", kind=Kind.REVERSE, parent=v)
    b = made(user, "somewhere else")
    i = made(user, "from the first to elsewhere", kind=Kind.INTERPOLATE, parent=a, end_parent=b)
    parts = {g.pk: own(media, g) for g in (a, v, r, b, i)}
    assert len({f for frames in parts.values() for f in frames}) > 5  # the clips differ

    assert downloaded(client, r, tmp_path) == parts[r.pk] + parts[v.pk]
    assert downloaded(client, i, tmp_path) == parts[a.pk] + parts[i.pk] + parts[b.pk]
    assert downloaded(client, v, tmp_path) == parts[a.pk] + parts[v.pk]
    # Each join is named by the video whose chain it is, though V plays last in R's.
    names = {p.name[:32] for p in (media / "chains").glob("*.mp4")}
    assert names == {r.pk.hex, i.pk.hex, v.pk.hex}


def test_a_different_order_or_kind_is_a_different_join(user, media):
    a = made(user, "one")
    b = made(user, "two", parent=a)
    assert chain_files.cache_name([a, b]) != chain_files.cache_name([b, a], b)
    same_files = chain_files.cache_name([a, b])
    b.kind = Kind.REVERSE
    assert chain_files.cache_name([a, b]) != same_files
    assert chain_files.cache_name([b, a], b).startswith(f"chains/{b.pk.hex}-")


# --- deleting either end -------------------------------------------------------------------------
def test_deleting_an_interpolations_end_leaves_it_intact_and_removes_its_join(
    client, user, media, tmp_path
):
    a = made(user, "start")
    b = made(user, "end")
    i = made(user, "between", kind=Kind.INTERPOLATE, parent=a, end_parent=b)
    downloaded(client, i, tmp_path)
    assert [p.name[:32] for p in (media / "chains").glob("*.mp4")] == [i.pk.hex]

    actions.delete_generation(Generation.objects.get(pk=b.pk), user)

    i.refresh_from_db()
    assert i.end_parent_id is None and i.parent_id == a.pk and i.video_file
    assert i.parent_removed_at is None  # its place in the tree did not change
    assert list((media / "chains").glob("*.mp4")) == []  # no copy of B's frames stays behind
    node = chains.tree(i).current
    assert node.end_removed and plays(i) == [a.pk, i.pk]
    assert downloaded(client, i, tmp_path) == own(media, a) + own(media, i)
    page = client.get(f"/generations/{i.pk}/")
    assert page.status_code == 200
    assert 'Interpolation to <span class="chain-to-removed">Removed video</span>' in (
        page.content.decode()
    )


def test_deleting_the_first_source_or_the_parent_of_a_reverse_extension_does_not_break_them(
    client, user, media
):
    root = made(user, "root")
    a = made(user, "start", parent=root)
    b = made(user, "end")
    i = made(user, "between", kind=Kind.INTERPOLATE, parent=a, end_parent=b)
    r = made(user, "before the start", kind=Kind.REVERSE, parent=a)

    actions.delete_generation(Generation.objects.get(pk=a.pk), user)

    for gen in (i, r):
        gen.refresh_from_db()
        assert gen.parent_id is None and gen.parent_removed_at is not None
        assert gen.kept_ancestor_id == root.pk
        assert client.get(f"/generations/{gen.pk}/").status_code == 200
    assert i.end_parent_id == b.pk
    assert plays(i) == [root.pk, i.pk, b.pk]  # what is left of root → (removed) → I → B
    assert plays(r) == [r.pk]
    tree = chains.tree(i)
    assert [n.gen.pk if n.gen else None for n in tree.nodes] == [root.pk, None, i.pk, r.pk]
    assert ids(chains.tree(b).arrivals) == [i.pk] and chains.tree(b).arrivals[0].parent is None
    page = client.get(f"/generations/{b.pk}/").content.decode()
    assert 'Reached from <span class="chain-to-removed">Removed video</span>' in page
