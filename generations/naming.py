"""File names people get: a video's download is named for its prompt.

Below the pages so that the template filter (``studio.download_name``) and the views that send
files themselves (a chain joined into one MP4) name them the same way.
"""

from __future__ import annotations

from typing import Any

from django.utils.text import slugify

DOWNLOAD_STEM = 40  # characters of the prompt in a download's file name


def download_name(gen: Any, suffix: str = "") -> str:
    """A video's file name when downloaded: its prompt as a slug, cut at a word, and the first
    characters of its id so two videos of one prompt differ: ``a-paper-boat-at-dusk-3f2a.mp4``
    (``lumaweb-3f2a.mp4`` for a prompt with no letters or digits). ``suffix`` is added before
    the id (``-chain`` for a joined chain)."""
    slug = slugify(gen.user_prompt)
    if len(slug) > DOWNLOAD_STEM:
        cut = slug[: DOWNLOAD_STEM + 1]
        slug = cut[: cut.rfind("-")] if "-" in cut else slug[:DOWNLOAD_STEM]
    return f"{slug.strip('-') or 'lumaweb'}{suffix}-{gen.pk.hex[:4]}.mp4"
