"""Validation of what people ask for; the pages and the JSON API share these forms."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from generations import fetch
from generations.models import ASPECT_RATIOS

MAX_PROMPT = 2000
MAX_URL = 2048
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

ASPECT_HINTS = {
    "16:9": "Widescreen",
    "9:16": "Vertical",
    "1:1": "Square",
    "4:3": "Classic",
    "3:4": "Portrait",
    "21:9": "Cinema",
    "9:21": "Tall",
}


def clean_keyframe_url(value: str) -> str:
    """Only plain http(s) URLs the upstream can fetch: no credentials, no odd schemes."""
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Use an http:// or https:// address.")
    if parts.username or parts.password:
        raise ValidationError("Addresses with a user name or password are not allowed.")
    if not settings.LUMA_DEMO_MODE:
        try:
            fetch.check_url(value, allow_private=False)
        except fetch.FetchError as exc:
            raise ValidationError(
                "The video service cannot fetch this address: it must be a public http(s) "
                f"URL ({exc})."
            ) from None
    return value


class GenerationForm(forms.Form):
    user_prompt = forms.CharField(
        label="Prompt",
        max_length=MAX_PROMPT,
        widget=forms.Textarea(
            attrs={
                "rows": 5,
                "placeholder": "A paper boat drifting down a "
                "rain-soaked street at dusk, neon reflections…",
            }
        ),
    )
    aspect_ratio = forms.ChoiceField(
        choices=[(r, f"{r} · {ASPECT_HINTS[r]}") for r in ASPECT_RATIOS],
        initial="16:9",
        widget=forms.RadioSelect,
    )
    expand_prompt = forms.BooleanField(
        label="Enhance prompt",
        required=False,
        initial=True,
        help_text="Let the service rewrite the prompt into a richer one.",
    )
    image_url = forms.URLField(
        label="Start keyframe URL",
        required=False,
        max_length=MAX_URL,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/start.jpg"}),
    )
    image_end_url = forms.URLField(
        label="End keyframe URL",
        required=False,
        max_length=MAX_URL,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/end.jpg"}),
    )
    image_file = forms.ImageField(label="…or upload a start keyframe", required=False)
    image_end_file = forms.ImageField(label="…or upload an end keyframe", required=False)

    def clean_user_prompt(self) -> str:
        prompt = _CONTROL.sub("", self.cleaned_data["user_prompt"]).strip()
        if not prompt:
            raise ValidationError("Describe what should happen in the video.")
        return prompt

    def clean_image_url(self) -> str:
        return clean_keyframe_url(self.cleaned_data.get("image_url", ""))

    def clean_image_end_url(self) -> str:
        return clean_keyframe_url(self.cleaned_data.get("image_end_url", ""))

    def _clean_upload(self, name: str):
        upload = self.cleaned_data.get(name)
        if not upload:
            return None
        if not (settings.PUBLIC_BASE_URL or settings.LUMA_DEMO_MODE):
            raise ValidationError(
                "Uploads need PUBLIC_BASE_URL: the video service must be able to fetch the "
                "image from this server. Paste an image URL instead."
            )
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError("Images up to 10 MB, please.")
        image = getattr(upload, "image", None)
        if image is not None and image.width * image.height > MAX_UPLOAD_PIXELS:
            raise ValidationError("That image has too many pixels (40 megapixels at most).")
        return upload

    def clean_image_file(self):
        return self._clean_upload("image_file")

    def clean_image_end_file(self):
        return self._clean_upload("image_end_file")

    def clean(self):
        data = super().clean()
        for url_field, file_field in (
            ("image_url", "image_file"),
            ("image_end_url", "image_end_file"),
        ):
            if data.get(url_field) and data.get(file_field):
                self.add_error(file_field, "Give a URL or an upload, not both.")
        return data

    def generation_fields(self) -> dict:
        data = self.cleaned_data
        fields = {
            "user_prompt": data["user_prompt"],
            "aspect_ratio": data["aspect_ratio"],
            "expand_prompt": bool(data.get("expand_prompt")),
            "image_url": data.get("image_url") or "",
            "image_end_url": data.get("image_end_url") or "",
        }
        for name in ("image_file", "image_end_file"):
            if data.get(name):
                fields[name] = data[name]
        return fields


class ExtendForm(GenerationForm):
    """Extending: the prompt says what happens next; the aspect ratio follows the parent."""

    aspect_ratio = forms.ChoiceField(choices=[(r, r) for r in ASPECT_RATIOS], required=False)

    def __init__(self, *args, parent=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.parent = parent
        self.fields["user_prompt"].label = "What happens next?"
        self.fields["user_prompt"].widget.attrs.update(
            rows=3, placeholder="The camera pulls back to reveal…"
        )

    def clean_aspect_ratio(self) -> str:
        if self.parent is not None:
            return self.parent.aspect_ratio
        return self.cleaned_data.get("aspect_ratio") or "16:9"
