"""The forms of "What came before" and "Interpolate" (issue 11 #2): extend's form, with the
words of each, and without keyframes (the videos they are made from are their keyframes)."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from generations.forms import ExtendForm
from generations.inputs import GenerationRequest
from generations.models import Generation, Status

KEYFRAME_FIELDS = (*GenerationRequest.uploads(), *GenerationRequest.uploads().values())


class _FromVideosForm(ExtendForm):
    prompt_label = ""
    placeholder = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in KEYFRAME_FIELDS:
            self.fields.pop(name, None)
        self.fields["user_prompt"].label = self.prompt_label
        self.fields["user_prompt"].widget.attrs.update(rows=3, placeholder=self.placeholder)


class BeforeForm(_FromVideosForm):
    """What came before a video: a new clip that ends where ``parent`` begins."""

    prompt_label = "What happens before?"
    placeholder = "A hand reaches for the door handle…"


class InterpolateForm(_FromVideosForm):
    """From ``parent`` to another finished video, picked by its id (``end``)."""

    prompt_label = "How does it get from this one to that one?"
    placeholder = "The camera glides through the window into…"

    end = forms.UUIDField(
        label="Ends in",
        error_messages={"required": "Pick the video it should lead into."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.end_video: Generation | None = None

    def clean_end(self) -> uuid.UUID:
        pk = self.cleaned_data["end"]
        if self.parent is not None and pk == self.parent.pk:
            raise ValidationError("Pick another video than this one.")
        self.end_video = Generation.objects.filter(pk=pk, status=Status.COMPLETED).first()
        if self.end_video is None:
            raise ValidationError("That video is not a finished one (any more): pick another.")
        return pk
