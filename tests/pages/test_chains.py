"""Chains as they really are: a tree (two extensions of one video are branches), read in one
query whatever its depth, with removed videos kept in their place; a path from the root to any
video downloaded as one MP4, joined with PyAV (packets copied when the clips match, encoded
again when they do not), cached, and refused with a message when a clip has no local copy. Both
kinds of service: extensions that hold their parent's video, and extensions that do not."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from pathlib import Path

import av
import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generations import actions, chains
from generations.chain_files import cache_name
from generations.models import Status
from simulator import media
from tests.pages.conftest import make_gen

FPS = 12


def clip(prompt: str, seconds: float = 1.0, aspect_ratio: str = "16:9", offset: float = 0.0) -> str:
    """A real H.264 MP4 in the media storage, drawn as the simulator draws its videos."""
    name = f"videos/chain-{uuid.uuid4().hex[:10]}.mp4"
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = media.Scene(
        prompt=prompt, aspect_ratio=aspect_ratio, seconds=seconds, fps=FPS, time_offset=offset
    )
    media.render(scene, path, path.with_suffix(".jpg"))
    return name


def probe(data: bytes, tmp_path: Path) -> tuple[int, float, tuple[int, int]]:
    """Frames decoded, duration in seconds and size of an MP4 (every frame is decoded: it plays)."""
    path = tmp_path / f"probe-{uuid.uuid4().hex[:6]}.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
        return frames, duration, (stream.codec_context.width, stream.codec_context.height)


class TreeParser(HTMLParser):
    """The chain section's videos as (depth in nested lists, link or "removed", current?)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.inside = False
        self.nodes: list[tuple[int, str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section" and found.get("id") == "chain":
            self.inside = True
        if not self.inside:
            return
        if tag == "ul":
            self.depth += 1
        classes = (found.get("class") or "").split()
        if "chain-card" in classes:
            where = found.get("href") or "removed"
            self.nodes.append((self.depth, where, found.get("aria-current") == "page"))

    def handle_endtag(self, tag: str) -> None:
        if self.inside and tag == "ul":
            self.depth -= 1
        if tag == "section":
            self.inside = False


def tree_on_page(client, gen) -> list[tuple[int, str, bool]]:
    parser = TreeParser()
    parser.feed(client.get(f"/generations/{gen.pk}/").content.decode())
    return parser.nodes


def url(gen) -> str:
    return f"/generations/{gen.pk}/"


# --- the tree ------------------------------------------------------------------------------------
def test_two_extensions_of_one_video_are_branches_of_its_tree(client, user):
    root = make_gen(user=user, user_prompt="a lantern over a lake")
    left = make_gen(user=user, parent=root, user_prompt="it rises")
    right = make_gen(user=user, parent=root, user_prompt="it sinks")
    deeper = make_gen(user=user, parent=left, user_prompt="it meets the moon")

    for gen in (root, left, right, deeper):
        nodes = tree_on_page(client, gen)
        assert [(depth, where) for depth, where, _ in nodes] == [
            (1, url(root)),
            (2, url(left)),
            (3, url(deeper)),
            (2, url(right)),  # a sibling of `left`, not its child
        ], gen.user_prompt
        assert [where for _, where, current in nodes if current] == [url(gen)]

    tree = chains.tree(deeper)
    assert (tree.size, tree.depth, tree.branches) == (4, 3, 2)
    assert [n.gen.pk for n in tree.current.path()] == [root.pk, left.pk, deeper.pk]
    page = client.get(url(root)).content.decode()
    assert "4 videos · 2 branches" in page
    # Each leaf offers its own path (the page's own button plays the path to this video).
    assert f'data-chain-play="{root.pk},{left.pk},{deeper.pk}"' in page
    assert f'data-chain-play="{root.pk},{right.pk}"' in page


def test_a_video_without_extensions_has_no_chain_section(client, user):
    alone = make_gen(user=user)
    assert 'id="chain"' not in client.get(url(alone)).content.decode()


def test_unfinished_videos_show_their_status_and_offer_no_playback(client, user):
    root = make_gen(user=user, user_prompt="a lantern", thumbnail_url="")
    queued = make_gen(Status.QUEUED, user=user, parent=root, user_prompt="still waiting")
    page = client.get(url(root)).content.decode()
    assert '<span class="chain-status">Queued</span>' in page
    paths = re.findall(r'data-chain-play="([^"]*)"', page)
    assert paths == []  # the root's path is itself (nothing to chain); the queued leaf: none
    assert str(queued.pk) in page  # it is in the tree all the same


def test_removed_videos_keep_their_place_in_the_tree(client, user, other):
    root = make_gen(user=user, user_prompt="first shot")
    middle = make_gen(user=other, parent=root, user_prompt="middle shot")
    one = make_gen(user=user, parent=middle, user_prompt="one way")
    two = make_gen(user=user, parent=middle, user_prompt="the other way")
    actions.delete_generation(middle, other)

    nodes = tree_on_page(client, one)
    assert [(depth, where) for depth, where, _ in nodes] == [
        (1, url(root)),
        (2, "removed"),  # one node for the removed video both extended
        (3, url(one)),
        (3, url(two)),
    ]
    # Its path plays what is left of it.
    one.refresh_from_db()
    assert [c.pk for c in chains.tree(one).current.clips()] == [root.pk, one.pk]

    # The root gone too: a removed node is the top. (No row is left that links `one` to `two`
    # now, so each shows its own line from the removed start.)
    actions.delete_generation(root, user)
    nodes = tree_on_page(client, two)
    assert [(depth, where, current) for depth, where, current in nodes] == [
        (1, "removed", False),
        (2, url(two), True),
    ]


def test_the_tree_is_read_in_one_query_however_deep(user):
    def deep(n: int):
        link = make_gen(user=user)
        for i in range(n):
            link = make_gen(user=user, parent=link)
            if i % 4 == 0:
                make_gen(user=user, parent=link)  # a branch
        return link

    counts = []
    for depth in (3, 20):
        leaf = deep(depth)
        with CaptureQueriesContext(connection) as ctx:
            tree = chains.tree(leaf)
        counts.append(len(ctx.captured_queries))
        assert tree.depth == depth + 1
    assert counts == [1, 1]


# --- which clips a path plays --------------------------------------------------------------------
@pytest.mark.parametrize("contains_parent", [False, True])
def test_a_path_is_every_clip_or_the_leaf_alone(settings, user, contains_parent):
    settings.LUMA_EXTENSION_CONTAINS_PARENT = contains_parent
    root = make_gen(user=user)
    middle = make_gen(user=user, parent=root)
    leaf = make_gen(user=user, parent=middle)
    clips = [c.pk for c in chains.path_clips(leaf)]
    assert clips == ([leaf.pk] if contains_parent else [root.pk, middle.pk, leaf.pk])
    assert [c.pk for c in chains.path_clips(root)] == [root.pk]


# --- one MP4 -------------------------------------------------------------------------------------
def a_chain(user, *seconds: float, aspect_ratios: tuple[str, ...] = ()):
    """A root and its extensions, each with a real copied clip of ``seconds``."""
    gens, offset = [], 0.0
    for n, length in enumerate(seconds):
        ratio = aspect_ratios[n] if aspect_ratios else "16:9"
        name = clip(f"part {n}", seconds=length, aspect_ratio=ratio, offset=offset)
        parent = gens[-1] if gens else None
        gens.append(make_gen(user=user, parent=parent, video_file=name, user_prompt=f"Part {n}!"))
        offset += length
    return gens


def test_a_chain_downloads_as_one_mp4_its_clips_joined_in_order(client, user, tmp_path, caplog):
    root, middle, leaf = a_chain(user, 1.0, 0.5, 1.0)
    make_gen(user=user, parent=middle, video_file=clip("a branch"))  # not on the path

    caplog.set_level("INFO", logger="generations.chain_views")
    response = client.get(f"/generations/{leaf.pk}/chain.mp4")
    assert response.status_code == 200
    assert response["Content-Type"] == "video/mp4"
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="part-2-chain-{leaf.pk.hex[:4]}.mp4"'
    )
    frames, duration, size = probe(b"".join(response.streaming_content), tmp_path)
    assert frames == round(2.5 * FPS)  # the frames of all three, none lost or doubled
    assert duration == pytest.approx(2.5, abs=0.1)
    assert size == (640, 360)
    assert "packets copied" in caplog.text  # no re-encode: the clips match

    # The join is kept, named by the path: the second download sends the same file.
    cached = Path(settings.MEDIA_ROOT) / cache_name([root, middle, leaf])
    assert cached.is_file()
    inode = cached.stat().st_ino
    again = client.get(f"/generations/{leaf.pk}/chain.mp4")
    assert again.status_code == 200 and b"".join(again.streaming_content) == cached.read_bytes()
    assert cached.stat().st_ino == inode  # sent as it was, not joined again (a read touches it)
    # The detail page offers it.
    assert f'href="/generations/{leaf.pk}/chain.mp4"' in client.get(url(leaf)).content.decode()


def test_clips_that_do_not_match_are_encoded_again(client, user, tmp_path, caplog):
    *_, leaf = a_chain(user, 1.0, 1.0, aspect_ratios=("16:9", "1:1"))
    caplog.set_level("INFO", logger="generations.chain_views")
    response = client.get(f"/generations/{leaf.pk}/chain.mp4")
    assert response.status_code == 200
    frames, duration, size = probe(b"".join(response.streaming_content), tmp_path)
    assert frames == 2 * FPS
    assert duration == pytest.approx(2.0, abs=0.15)
    assert size == (640, 360)  # the first clip's size
    assert "encoded again" in caplog.text


def test_a_service_whose_extensions_hold_their_parent_downloads_the_leaf_alone(
    client, user, settings, tmp_path
):
    settings.LUMA_EXTENSION_CONTAINS_PARENT = True
    root = make_gen(user=user, video_file=clip("the start", seconds=1.0))
    whole = clip("the start and what follows", seconds=2.0)  # as such a service makes it
    leaf = make_gen(user=user, parent=root, video_file=whole, user_prompt="What follows")
    response = client.get(f"/generations/{leaf.pk}/chain.mp4")
    assert response.status_code == 200
    frames, _, _ = probe(b"".join(response.streaming_content), tmp_path)
    assert frames == 2 * FPS  # not 3 s: the root's second is already in the leaf's video
    page = client.get(url(leaf)).content.decode()
    assert f'data-chain-play="{leaf.pk}"' in page


def test_a_path_with_a_video_not_copied_gets_a_message_not_an_error(client, user):
    root = make_gen(user=user, video_file=clip("copied"))
    leaf = make_gen(user=user, parent=root)  # finished, but its copy is not there (yet)
    response = client.get(f"/generations/{leaf.pk}/chain.mp4", follow=True)
    assert response.redirect_chain == [(f"/generations/{leaf.pk}/#chain", 302)]
    page = response.content.decode()
    assert "1 of its videos has not been copied" in page
    assert f'href="/generations/{leaf.pk}/chain.mp4"' not in page  # not offered either


def test_an_unreadable_copy_gets_a_message_not_an_error(client, user):
    root = make_gen(user=user, video_file=clip("copied"))
    broken = Path(settings.MEDIA_ROOT) / f"videos/broken-{uuid.uuid4().hex[:6]}.mp4"
    broken.write_bytes(b"not a video at all")
    leaf = make_gen(user=user, parent=root, video_file=str(broken.relative_to(settings.MEDIA_ROOT)))
    response = client.get(f"/generations/{leaf.pk}/chain.mp4", follow=True)
    assert response.redirect_chain[-1][1] == 302
    assert "could not be joined" in response.content.decode()


def test_an_unfinished_video_has_no_chain_download(client, user):
    root = make_gen(user=user, video_file=clip("copied"))
    leaf = make_gen(Status.IN_PROGRESS, user=user, parent=root)
    response = client.get(f"/generations/{leaf.pk}/chain.mp4", follow=True)
    assert "not finished" in response.content.decode()


def test_the_chain_download_needs_a_login(user):
    from django.test import Client

    leaf = make_gen(user=user)
    response = Client().get(f"/generations/{leaf.pk}/chain.mp4")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_joining_leaves_no_file_descriptor_open(tmp_path):
    """A long-lived web worker joins chain after chain: each join must close what it opened (the
    temporary file's descriptor leaked once: 20 joins, 20 more open files)."""
    from generations.joining import join

    clips = [Path(settings.MEDIA_ROOT) / clip(f"part {i}", seconds=0.5) for i in range(2)]
    fds = Path("/proc/self/fd")
    join(clips, tmp_path / "warm-up.mp4")  # libraries' one-time opens, not counted
    before = len(list(fds.iterdir()))
    for i in range(5):
        join(clips, tmp_path / f"joined-{i}.mp4")
    assert len(list(fds.iterdir())) == before
