"""Issue 9, finding 12: nobody can block another person's delete by extending their video.

Alice deletes her video while Bob's extension of it lives on: her files go, his extension keeps
its own video and still plays, and the chain on its page shows the removed link as removed. The
videos are made by the real pipeline steps (submit, poll, copy) against the simulator over real
HTTP, driven directly (no worker), so each step happens exactly when the test says.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from django.core.files.storage import default_storage
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone

from generations import actions, chains, pipeline
from generations.inputs import GenerationRequest
from generations.models import Generation, Kind, Status
from tests.conftest import wait_for
from tests.factories import make_user, remote_create
from tests.pages.conftest import make_gen


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def finished(sim, user, prompt: str, parent: Generation | None = None) -> Generation:
    """A video made the way the pipeline makes one: queued, POSTed, polled until done, copied."""
    request = GenerationRequest(user_prompt=prompt)
    if parent is None:
        gen = actions.create_generation(user, request)
    else:
        gen = actions.extend_generation(parent, user, request)
    assert pipeline.submit(gen.pk).result == "accepted"
    gen.refresh_from_db()
    sim.force_complete(gen.remote_id)
    Generation.objects.filter(pk=gen.pk).update(next_poll_at=timezone.now())
    pipeline.poll_in_flight()
    assert pipeline.copy_assets(gen.pk) == "copied"
    gen.refresh_from_db()
    assert gen.status == Status.COMPLETED and gen.video_file and gen.thumbnail_file
    return gen


def stored(gen: Generation) -> list[str]:
    return [f.name for f in (gen.video_file, gen.thumbnail_file) if f]


def chain_items(html: str) -> list[str]:
    """The chain's videos in page order (the tree's nodes, depth first), each as its own
    ``<li …>`` markup up to the next node's."""
    section = re.search(
        r'<section class="chain-wrap[^"]*" id="chain"[^>]*>(.*?)</section>', html, re.S
    )
    assert section, "the page shows no chain"
    return re.findall(
        r'<li class="chain-node.*?(?=<li class="chain-node|$)', section.group(1), re.S
    )


@pytest.mark.parametrize("way", ["page", "api"])
def test_the_owner_deletes_her_video_though_another_person_extended_it(sim, alice, bob, way):
    hers = finished(sim, alice, "a red kite over the dunes")
    his = finished(sim, bob, "the kite dives into the sea", parent=hers)
    her_files, his_files = stored(hers), stored(his)
    as_alice, as_bob = logged_in(alice), logged_in(bob)

    if way == "page":
        page = as_alice.get(f"/generations/{hers.pk}/").content.decode()
        assert f'action="/generations/{hers.pk}/delete/"' in page  # offered, extensions or not
        response = as_alice.post(f"/generations/{hers.pk}/delete/", follow=True)
        assert response.redirect_chain[-1][0] == "/"
        assert "Deleted" in response.content.decode()
    else:
        assert as_alice.delete(f"/api/v1/generations/{hers.pk}").status_code == 204

    assert not Generation.objects.filter(pk=hers.pk).exists()
    assert not any(default_storage.exists(name) for name in her_files)

    his.refresh_from_db()
    assert his.status == Status.COMPLETED
    assert his.parent_id is None and his.parent_removed_at is not None
    assert his.parent_remote_id == hers.remote_id  # what it extended upstream is still known
    assert all(default_storage.exists(name) for name in his_files)

    page = as_bob.get(f"/generations/{his.pk}/").content.decode()
    assert re.search(rf'<video [^>]*src="{re.escape(his.video_file.url)}"', page)  # plays
    assert f"/generations/{hers.pk}/" not in page  # no link to the removed row
    assert "a red kite over the dunes" not in page
    items = chain_items(page)
    assert len(items) == 2
    assert "Removed video" in items[0] and "href" not in items[0]
    assert 'aria-current="page"' in items[1]
    assert "Extension of a removed video" in page
    assert 'title="An extension of a removed video"' in as_bob.get("/").content.decode()  # card

    body = as_bob.get(f"/api/v1/generations/{his.pk}").json()
    assert body["parent_id"] is None and body["parent_removed"] is True
    assert body["video"]["local"] is True

    assert as_bob.delete(f"/api/v1/generations/{his.pk}").status_code == 204
    assert not Generation.objects.exists()
    assert not any(default_storage.exists(name) for name in his_files)


def test_a_removed_link_in_the_middle_keeps_its_place_in_the_chain(alice, bob):
    first = make_gen(user=alice, user_prompt="first shot")
    middle = make_gen(user=bob, parent=first, user_prompt="middle shot")
    last = make_gen(user=alice, parent=middle, user_prompt="last shot")
    actions.delete_generation(middle, bob)

    for gen in (first, last):
        items = chain_items(logged_in(alice).get(f"/generations/{gen.pk}/").content.decode())
        assert len(items) == 3, gen.user_prompt
        assert "first shot" in items[0]
        assert "Removed video" in items[1] and "href" not in items[1]
        assert "last shot" in items[2]
    # Removing the first one too leaves one removed link before the last.
    actions.delete_generation(first, alice)
    last.refresh_from_db()
    path = chains.tree(last).current.path()
    assert [node.gen.pk if node.gen else None for node in path] == [None, last.pk]


def test_a_delete_while_the_extension_is_queued_does_not_break_that_extension(sim, alice, bob):
    hers = finished(sim, alice, "a paper boat in the rain")
    his = actions.extend_generation(hers, bob, GenerationRequest(user_prompt="the boat sinks"))
    actions.delete_generation(hers, alice)  # before any worker took the extension

    his.refresh_from_db()
    assert his.status == Status.QUEUED and his.parent_remote_id == hers.remote_id
    assert pipeline.submit(his.pk).result == "accepted"
    posts = [p for p in sim.ledger()["posts"] if p["user_prompt"] == "the boat sinks"]
    assert [(p["kind"], p["parent_id"]) for p in posts] == [("extend", hers.remote_id)]
    his.refresh_from_db()
    sim.force_complete(his.remote_id)
    Generation.objects.filter(pk=his.pk).update(next_poll_at=timezone.now())
    pipeline.poll_in_flight()
    assert pipeline.copy_assets(his.pk) == "copied"
    his.refresh_from_db()
    assert his.status == Status.COMPLETED and his.video_file


def test_retrying_an_extension_whose_video_was_removed_is_refused(sim, alice, bob):
    hers = finished(sim, alice, "a lantern on the lake")
    his = actions.extend_generation(hers, bob, GenerationRequest(user_prompt="it drifts away"))
    # the service refuses it (an unknown parent), so it fails and can be retried
    Generation.objects.filter(pk=his.pk).update(parent_remote_id="gone-upstream")
    assert pipeline.submit(his.pk).result == "failed"
    actions.delete_generation(hers, alice)
    his.refresh_from_db()
    with pytest.raises(actions.ServiceError, match="no longer available to extend"):
        actions.retry_generation(his, bob)
    his.refresh_from_db()
    assert his.status == Status.FAILED and his.posts_authorized == 1


def test_a_late_answer_for_an_extension_whose_video_was_deleted_meanwhile_is_kept(
    transactional_db, sim, settings
):
    """The extension's POST was slow, the sweeper flagged it, Bob marked it failed and Alice
    deleted her video; then the paid answer came: it is kept, as an extension of a removed
    video (not pointing at the deleted row)."""
    alice, bob = make_user("alice"), make_user("bob")
    upstream = remote_create(sim, "a glass of water")
    sim.force_complete(upstream["id"])
    # Rows made directly, with no wake-up message: only this test's own submit takes them.
    hers = make_gen(user=alice, remote_id=upstream["id"], user_prompt="a glass of water")
    his = Generation.objects.create(
        user_prompt="it spills",
        created_by=bob,
        kind=Kind.EXTEND,
        parent=hers,
        parent_remote_id=hers.remote_id,
        enqueued_at=timezone.now(),
    )
    sim.configure(slow_rate=1.0, slow_seconds=1.5)
    result = []
    worker = threading.Thread(
        target=lambda: (result.append(pipeline.submit(his.pk).result), close_old_connections())
    )
    worker.start()
    wait_for(
        lambda: Generation.objects.filter(pk=his.pk, post_started_at__isnull=False).exists(),
        5,
        "the POST to be sent",
    )
    settings.LUMA_SUBMIT_STALE_AFTER = 0.01
    time.sleep(0.05)
    assert pipeline.sweep().needs_attention == 1
    actions.mark_failed(Generation.objects.get(pk=his.pk), bob)
    actions.delete_generation(hers, alice)
    worker.join(10)
    assert result == ["adopted"]
    kept = Generation.objects.exclude(pk=his.pk).get()
    assert kept.status == Status.IN_PROGRESS and kept.kind == Kind.EXTEND
    assert kept.parent_id is None and kept.parent_removed_at is not None
    assert kept.parent_remote_id == upstream["id"]
