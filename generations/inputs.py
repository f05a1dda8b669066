"""What a person asks for, written once.

``GenerationRequest`` is the one definition of a generation's request fields (named as the
upstream names them). The create and extend forms take their field list from it, the JSON API
validates through those forms, ``actions`` stores it, ``pipeline.submit`` turns it into the
upstream body, a late answer's new row and "generate again" copy it from a row.

Adding an upstream request field: a model field, a field here, a migration, tests. Nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.files import File
from django.core.files.storage import default_storage

if TYPE_CHECKING:
    from generations.models import Generation

# An uploaded keyframe is sent as the URL field it stands in for, made public through
# PUBLIC_BASE_URL (the upstream fetches keyframes itself).
UPLOAD_FOR = "upload_for"
# A field only some providers can do (``generations.providers``: ``Capabilities``). It is not
# part of the legacy body (``upstream_body``); a provider that can do it sends it its own way.
OPTION = "option"

Keyframe = File | str | None
"""An upload (``File``), the name of a keyframe already stored (``str``), or none."""


@dataclass(frozen=True)
class GenerationRequest:
    """A generation's request: the upstream's body fields plus keyframe uploads."""

    user_prompt: str
    aspect_ratio: str = "16:9"
    expand_prompt: bool = False
    image_url: str = ""
    image_end_url: str = ""
    image_file: Keyframe = field(default=None, metadata={UPLOAD_FOR: "image_url"})
    image_end_file: Keyframe = field(default=None, metadata={UPLOAD_FOR: "image_end_url"})
    model: str = field(default="", metadata={OPTION: True})
    resolution: str = field(default="", metadata={OPTION: True})
    duration: str = field(default="", metadata={OPTION: True})
    loop: bool = field(default=False, metadata={OPTION: True})
    concepts: str = field(default="", metadata={OPTION: True})  # comma-separated keys

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def uploads(cls) -> dict[str, str]:
        """Upload field -> the URL field it stands in for."""
        return {
            f.name: f.metadata[UPLOAD_FOR]
            for f in dataclasses.fields(cls)
            if UPLOAD_FOR in f.metadata
        }

    @classmethod
    def options(cls) -> tuple[str, ...]:
        """The fields only some providers can do."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get(OPTION))

    def chosen_options(self) -> dict[str, Any]:
        """The options this request sets (not left at their defaults)."""
        defaults = self.defaults()
        return {
            name: getattr(self, name)
            for name in self.options()
            if getattr(self, name) != defaults[name]
        }

    def concept_keys(self) -> list[str]:
        return [key.strip() for key in self.concepts.split(",") if key.strip()]

    def keyframe_urls(self, public_base_url: str) -> tuple[str, str]:
        """(start, end) image URLs: as given, or a stored upload's public URL."""
        body = self.upstream_body(public_base_url)
        return body.get("image_url", ""), body.get("image_end_url", "")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The values a caller may leave out (uploads aside)."""
        return {
            f.name: f.default
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING and f.name not in cls.uploads()
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> GenerationRequest:
        """From cleaned form data (other keys are ignored; empty uploads become None)."""
        values = {name: data[name] for name in cls.field_names() if name in data}
        for name in cls.uploads():
            values[name] = values.get(name) or None
        return cls(**values)

    @classmethod
    def from_row(cls, gen: Generation) -> GenerationRequest:
        """What ``gen`` asked for; stored keyframes are kept by name (shared, not copied)."""
        values: dict[str, Any] = {name: getattr(gen, name) for name in cls.field_names()}
        for name in cls.uploads():
            values[name] = values[name].name if values[name] else None
        return cls(**values)

    def row_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``Generation(...)``."""
        values = {name: getattr(self, name) for name in self.field_names()}
        for name in self.uploads():
            if values[name] is None:
                values[name] = ""
        return values

    def form_initial(self) -> dict[str, Any]:
        """Initial values for a form (a file input cannot be pre-filled: uploads are left out)."""
        return {
            name: getattr(self, name) for name in self.field_names() if name not in self.uploads()
        }

    def upstream_body(self, public_base_url: str) -> dict[str, Any]:
        """The legacy (UmamiAI) JSON body (of a stored request: see ``from_row``). Empty values
        and provider options are left out; a stored upload becomes the public URL of its field
        when that URL is empty and the app has a public address."""
        body: dict[str, Any] = {}
        skipped = set(self.uploads()) | set(self.options())
        for name in self.field_names():
            value = getattr(self, name)
            if name not in skipped and value not in ("", None):
                body[name] = value
        for upload, url_field in self.uploads().items():
            stored = getattr(self, upload)
            if not body.get(url_field) and isinstance(stored, str) and stored and public_base_url:
                body[url_field] = public_base_url + default_storage.url(stored)
        return body
