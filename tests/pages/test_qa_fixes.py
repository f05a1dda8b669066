"""Page bugs a QA session found, held where the markup tells (tests/pages/test_qa_fixes_browser.py
has those of layout and JavaScript): a root video's chain header offers no "whole chain" play or
download for a path of one clip, and a board with no copied video offers no empty ZIP."""

from __future__ import annotations

import re

from generations import boards
from generations.models import Generation
from tests.pages.conftest import make_gen


def test_a_root_with_branches_offers_no_one_clip_chain_play_or_download(client, user, settings):
    settings.LUMA_EXTENSION_CONTAINS_PARENT = False
    root = make_gen(user=user, user_prompt="a lantern", video_file="videos/root.mp4")
    left = make_gen(user=user, parent=root, user_prompt="it rises", video_file="videos/l.mp4")
    make_gen(user=user, parent=root, user_prompt="it sinks", video_file="videos/r.mp4")

    page = client.get(f"/generations/{root.pk}/").content.decode()
    head = page.split('class="chain-head"', 1)[1].split("data-chain-player", 1)[0]
    assert "data-chain-play" not in head
    assert "Download the chain as one MP4" not in head
    # Each branch still plays from the start.
    assert len(re.findall(r'data-chain-play="[^"]*"', page)) == 2

    leaf = client.get(f"/generations/{left.pk}/").content.decode()
    leaf_head = leaf.split('class="chain-head"', 1)[1].split("data-chain-player", 1)[0]
    assert f'data-chain-play="{root.pk},{left.pk}"' in leaf_head
    assert "Download the chain as one MP4" in leaf_head


def test_a_board_without_copied_videos_offers_no_zip(client, user):
    board = boards.create_board(user, "Nothing copied yet")
    url = f"/boards/{board.pk}/"
    zip_link = f'href="/boards/{board.pk}/download.zip"'
    empty = client.get(url).content.decode()
    assert zip_link not in empty
    assert "Download ZIP" in empty  # shown, disabled, with the reason

    boards.add(board, make_gen(user=user), user)  # not copied locally yet
    assert zip_link not in client.get(url).content.decode()

    copied = make_gen(user=user)
    Generation.objects.filter(pk=copied.pk).update(video_file=f"videos/{copied.pk}.mp4")
    boards.add(board, copied, user)
    assert zip_link in client.get(url).content.decode()
