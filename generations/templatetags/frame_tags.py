"""The frame picker's facts about a video (generations/frames.py): how many frames, how fast."""

from __future__ import annotations

from django import template
from django.forms import BaseForm

from generations import frames
from generations.models import Generation, Status

register = template.Library()


@register.simple_tag
def video_frames(gen: Generation) -> frames.VideoInfo | None:
    """What the detail page's "Use a frame" scrubber spans, or None when no frame can be taken
    (not finished, no local copy, an unreadable file): the picker is then not shown. The file's
    header is read once per file version (``frames.probe`` is cached)."""
    if gen.status != Status.COMPLETED or not gen.video_file:
        return None
    try:
        return frames.probe(frames.video_path(gen))
    except frames.FrameError:
        return None


@register.filter
def frame_seconds(info: frames.VideoInfo, index: int | None) -> str:
    """When frame ``index`` (0-based; None for the last) is shown, as "2.46"."""
    return f"{info.seconds(index):.2f}"


@register.filter
def frame_choice(form: BaseForm, name: str) -> frames.Resolved | None:
    """The frame the create form's ``name`` field (``image_frame``, ``image_end_frame``) names,
    for its preview; None when there is none or it was refused."""
    choose = getattr(form, "frame_choice", None)
    return choose(name) if choose is not None else None
