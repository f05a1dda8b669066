"""Joined chain files (``MEDIA_ROOT/chains/``) do not outlive what they hold: deleting a video
removes every join that contains its clip (and no other), a video copied again leaves no old
join behind, and joins nobody has read for ``LUMA_CHAIN_CACHE_DAYS`` are swept."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from generations import actions, chain_files, chains, joining, pipeline
from generations.models import Generation
from tests.pages.conftest import make_gen
from tests.pages.test_chains import a_chain, clip

pytestmark = pytest.mark.django_db

DAY = 86400


@pytest.fixture
def media(settings, tmp_path: Path) -> Path:
    """A media root of the test's own, so the joins listed are this test's only."""
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def joins(media: Path) -> set[str]:
    return {p.name for p in (media / "chains").glob("*.mp4")}


def download(client, gen) -> Path:
    response = client.get(f"/generations/{gen.pk}/chain.mp4")
    assert response.status_code == 200, response
    b"".join(response.streaming_content)
    fresh = Generation.objects.get(pk=gen.pk)  # its links as they are now
    return chain_files.path(chain_files.cache_name(chains.path_clips(fresh)))


def test_deleting_a_video_removes_every_join_that_contains_it_and_no_other(client, user, media):
    root, middle, leaf = a_chain(user, 0.5, 0.5, 0.5)
    branch = make_gen(user=user, parent=root, video_file=clip("a branch", seconds=0.5))
    elsewhere = a_chain(user, 0.5, 0.5)[-1]  # another chain altogether
    with_middle = {download(client, middle).name, download(client, leaf).name}
    others = {download(client, branch).name, download(client, elsewhere).name}
    legacy = media / "chains" / ("0" * 32 + ".mp4")  # named as before: nobody knows its clips
    legacy.write_bytes(b"an old join")
    assert joins(media) == with_middle | others | {legacy.name}

    actions.delete_generation(Generation.objects.get(pk=middle.pk), user)

    assert joins(media) == others  # the middle's frames are nowhere under chains/ any more
    # The leaf still downloads: its path is now the root and itself, joined afresh.
    again = download(client, leaf)
    assert again.is_file() and again.name not in with_middle

    actions.delete_generation(Generation.objects.get(pk=root.pk), user)
    assert joins(media) == {download(client, elsewhere).name}


def test_a_join_finished_after_its_clip_was_deleted_is_not_kept(
    client, user, media, monkeypatch, tmp_path
):
    root, leaf = a_chain(user, 0.5, 0.5)
    real = joining.join

    def join_while_deleted(clips, out):  # the delete lands while the join is being written
        opened = [shutil.copy(clip, tmp_path / f"opened-{n}.mp4") for n, clip in enumerate(clips)]
        actions.delete_generation(Generation.objects.get(pk=root.pk), user)
        return real(opened, out)

    monkeypatch.setattr(joining, "join", join_while_deleted)
    response = client.get(f"/generations/{leaf.pk}/chain.mp4", follow=True)
    assert "changed while it was being joined" in response.content.decode()
    assert joins(media) == set()


def test_a_video_copied_again_leaves_no_old_join_behind(client, user, media):
    *_, leaf = a_chain(user, 0.5, 0.5)
    first = download(client, leaf)
    Generation.objects.filter(pk=leaf.pk).update(video_file=clip("copied again", seconds=0.5))
    second = download(client, leaf)
    assert second != first
    assert joins(media) == {second.name}  # one join per video at most


def test_joins_not_read_for_a_while_are_swept_and_recent_ones_kept(client, user, media, settings):
    settings.LUMA_CHAIN_CACHE_DAYS = 7
    leaves = [a_chain(user, 0.5, 0.5)[-1] for _ in range(3)]
    old, read, recent = (download(client, leaf) for leaf in leaves)
    week_ago = time.time() - 8 * DAY
    for path in (old, read):
        os.utime(path, (week_ago, week_ago))
    os.utime(recent, (time.time() - DAY, time.time() - DAY))
    # Reading a join keeps it: the download touches it.
    assert download(client, leaves[1]) == read
    assert read.stat().st_mtime > time.time() - 60

    assert pipeline.sweep().joins_removed == 1
    assert joins(media) == {read.name, recent.name}

    # One directory scan every few minutes at most, whatever the sweep's own interval.
    os.utime(recent, (week_ago, week_ago))
    assert pipeline.sweep().joins_removed == 0
    assert recent.is_file()
    marker = media / "chains" / chain_files.MARKER
    stamp = time.time() - chain_files.SWEEP_EVERY - 1
    os.utime(marker, (stamp, stamp))
    assert pipeline.sweep().joins_removed == 1
    assert joins(media) == {read.name}
