"""Validation of what people ask for; the pages and the JSON API share these forms."""

from __future__ import annotations

import dataclasses
import re
import uuid
from typing import Any, cast
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.http import QueryDict
from django.utils.functional import lazy

from generations import fetch, frames, images, money, provider_fields
from generations.actions import MAX_BATCH
from generations.inputs import GenerationRequest
from generations.models import ASPECT_RATIOS, DEFAULT_ROLE, AspectRatio, Generation, Role

MAX_PROMPT = 2000
MAX_URL = 2048
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000
# How much of a value a 400 repeats when its field has no length limit of its own (a choice, a
# hidden id): legitimate values are far shorter.
ECHO_CAP = 100
# How far past its max_length a text is sent back with its error, to be shortened by hand (a
# pasted prompt a little too long); past that, it is cut, and its error says so.
ECHO_OVERRUN = 500
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

ASPECT_HINTS = dict(AspectRatio.choices)
SUBMIT_KEY_FIELD = "submit_key"
# A frame field -> the keyframe upload it fills (generations/frames.py).
FRAME_FOR = {"image_frame": "image_file", "image_end_frame": "image_end_file"}
# The create page's "Use a frame" query (the detail page's picker): which slot -> frame field.
FRAME_SLOTS = {"start": "image_frame", "end": "image_end_frame"}
# The most jobs one submit of the create form (or one API request) may queue: prompts x ratios.
# The prompt box's limit in batch mode: MAX_BATCH lines of a whole prompt each.
MAX_BATCH_TEXT = MAX_BATCH * (MAX_PROMPT + 2)


def clean_prompt(value: str) -> str:
    """A prompt without control characters or surrounding blanks; an empty one is refused."""
    prompt = _CONTROL.sub("", value).strip()
    if not prompt:
        raise ValidationError("Describe what should happen in the video.")
    return prompt


def too_many_jobs(prompts: int, ratios: int) -> str:
    """Why a batch of ``prompts`` x ``ratios`` is refused ("" when it fits)."""
    jobs = prompts * ratios
    if jobs <= MAX_BATCH:
        return ""
    how = f" ({prompts} prompts in {ratios} aspect ratios each)" if ratios > 1 else ""
    return (
        f"That is {jobs} videos{how}; one batch makes at most {MAX_BATCH}. Nothing was queued: "
        "remove some lines or aspect ratios."
    )


def new_submit_key() -> str:
    """A one-time key for one drawing of a create or extend form."""
    return uuid.uuid4().hex


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


class GenerationForm(forms.ModelForm):
    """The request fields of ``GenerationRequest``, validated; the pages and the API share it.

    The field list comes from ``GenerationRequest``: a new request field shows up here (with
    the model field's validation) without touching this form. Fields declared below only add
    what the model cannot say (limits, words, cleaning).
    """

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
    # A frame of a finished video as a keyframe: a reference (``<video id>`` or ``<id>@<seconds>``,
    # see generations/frames.py), extracted when the form is submitted. Rendered by the create
    # page as a ticked checkbox beside its preview (unticking it is "clear", without JavaScript).
    image_frame = forms.CharField(
        label="Start keyframe: a frame", required=False, max_length=100, widget=forms.HiddenInput
    )
    image_end_frame = forms.CharField(
        label="End keyframe: a frame", required=False, max_length=100, widget=forms.HiddenInput
    )
    # "Generate again": keyframes uploaded for that earlier generation are kept unless replaced.
    keyframes_from = forms.UUIDField(required=False, widget=forms.HiddenInput)
    # Not a request field: a one-time key drawn with the form (a new one each time the page is
    # drawn), so a double-click or a re-post of the same form queues one job, not two
    # (``actions.create_generation``'s idempotency key). The JSON API ignores it (it reads the
    # Idempotency-Key header instead).
    submit_key = forms.CharField(
        required=False, max_length=255, initial=new_submit_key, widget=forms.HiddenInput
    )

    class Meta:
        model = Generation
        fields = GenerationRequest.field_names()

    # Whether this form takes a frame of a video as a keyframe (the extend form does not).
    takes_frames = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The options the provider can do, as its fields; none of the others (issue 11 #2).
        provider_fields.fit_form(self)
        self.frames: dict[str, frames.Resolved] = {}  # frame field -> the frame it names
        if not self.takes_frames:
            for name in FRAME_FOR:
                del self.fields[name]
        # A long text is counted on the page (static/js/app.js), not cut by the browser at
        # maxlength: a pasted text too long is refused with a message, whole.
        for field in self.fields.values():
            attrs = field.widget.attrs
            if isinstance(field.widget, forms.Textarea) and "maxlength" in attrs:
                attrs["data-maxlength"] = attrs.pop("maxlength")
        source = self.keyframe_source()
        for upload in GenerationRequest.uploads():
            if source is not None and getattr(source, upload):
                self.fields[f"keep_{upload}"] = forms.BooleanField(
                    label="Keep the image uploaded for the earlier video",
                    required=False,
                    initial=True,
                )

    def keyframe_source(self) -> Generation | None:
        """The earlier generation whose uploaded keyframes this form carries over."""
        raw = (
            self.data.get("keyframes_from") if self.is_bound else self.initial.get("keyframes_from")
        )
        try:
            pk = uuid.UUID(str(raw)) if raw else None
        except ValueError:
            return None
        return Generation.objects.filter(pk=pk).first() if pk else None

    def kept_keyframes(self) -> list[tuple[str, Any]]:
        """(upload field, stored file) pairs offered for keeping, for the page to show."""
        source = self.keyframe_source()
        if source is None:
            return []
        return [
            (name, getattr(source, name))
            for name in GenerationRequest.uploads()
            if getattr(source, name)
        ]

    def clean_user_prompt(self) -> str:
        return clean_prompt(self.cleaned_data["user_prompt"])

    def clean_image_url(self) -> str:
        return clean_keyframe_url(self.cleaned_data.get("image_url", ""))

    def clean_image_end_url(self) -> str:
        return clean_keyframe_url(self.cleaned_data.get("image_end_url", ""))

    def _clean_upload(self, name: str) -> Any:
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
        # Stored and served publicly: only the pixels, named by their real type (no EXIF/GPS,
        # no client extension). After the caps, as this decodes the whole image.
        return images.reencode_keyframe(upload)

    def clean_image_file(self) -> Any:
        return self._clean_upload("image_file")

    def clean_image_end_file(self) -> Any:
        return self._clean_upload("image_end_file")

    def clean_image_frame(self) -> str:
        return self._clean_frame("image_frame")

    def clean_image_end_frame(self) -> str:
        return self._clean_frame("image_end_frame")

    def _clean_frame(self, name: str) -> str:
        """A frame reference that names a frame of a finished video with a local copy, or a
        refusal that says why (a forged or stale reference never reaches the pipeline)."""
        value = self.cleaned_data.get(name, "")
        if not value:
            return ""
        if not (settings.PUBLIC_BASE_URL or settings.LUMA_DEMO_MODE):
            raise ValidationError(
                "Frames as keyframes need PUBLIC_BASE_URL: the video service must be able to "
                "fetch the image from this server."
            )
        try:
            ref = frames.FrameRef.parse(value)
            self.frames[name] = ref.resolve()
        except frames.FrameError as exc:
            raise ValidationError(str(exc)) from None
        return str(ref)

    def frame_choice(self, name: str) -> frames.Resolved | None:
        """The frame this form's ``name`` field names, for the page's preview: as cleaned for a
        bound form (None when it was refused), else from the initial value."""
        if name not in self.fields:
            return None
        if self.is_bound:
            if hasattr(self, "cleaned_data"):
                return self.frames.get(name)
            value = self.data.get(self.add_prefix(name), "")
        else:
            value = self.initial.get(name, "")
        if not value:
            return None
        try:
            return frames.FrameRef.parse(str(value)).resolve()
        except frames.FrameError:
            return None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # An option the provider cannot do is refused, not dropped: the person asked for it.
        for reason in provider_fields.refusals(self.data).values():
            self.add_error(None, reason)
        source = self.keyframe_source()
        for frame_field, upload in FRAME_FOR.items():
            resolved = self.frames.get(frame_field)
            if resolved is None:
                continue
            url_field = GenerationRequest.uploads()[upload]
            if data.get(url_field) or data.get(upload):
                self.add_error(
                    frame_field, "Give one keyframe here: a URL, an upload or a frame, not two."
                )
                continue
            # Extracted now, stored with the row like any uploaded keyframe.
            data[upload] = resolved.keyframe()
        for upload, url_field in GenerationRequest.uploads().items():
            if data.get(url_field) and data.get(upload):
                self.add_error(upload, "Give a URL or an upload, not both.")
            kept = getattr(source, upload) if source is not None else None
            if (
                kept
                and data.get(f"keep_{upload}")
                and not (data.get(url_field) or data.get(upload))
            ):
                data[upload] = kept.name  # shared with the earlier row, not copied
        return data

    def _post_clean(self) -> None:
        """Validation is this form's; nothing is built or saved through the ModelForm."""

    def full_clean(self) -> None:
        """Validate, then make sure an invalid form does not send a huge value back.

        A 400 re-renders the form with what was sent (and a wrong choice is quoted in its
        error): a 5 MB prompt came back whole. Once validated, every value is cut to what its
        field accepts (its ``max_length`` and ``ECHO_OVERRUN`` more, or ``ECHO_CAP``), in the
        data the form re-renders and in the errors' parameters; the error still says how long the
        value was, and a text cut here gets an error saying so: nothing is cut silently.
        """
        super().full_clean()
        if not (self.is_bound and self.errors):
            return
        sent = self.data
        self.data = self._capped_data()
        for name, field in self.fields.items():
            value, limit = sent.get(self.add_prefix(name)), _echo_limit(field)
            if getattr(field, "max_length", None) and isinstance(value, str) and len(value) > limit:
                self.add_error(
                    name,
                    f"Only its first {limit:,} characters are shown here: paste a shorter text.",
                )
        for errors in self.errors.values():
            for error in errors.data:
                params = getattr(error, "params", None)  # (a list-type error has none)
                if isinstance(error, ValidationError) and isinstance(params, dict):
                    error.params = {key: _cap(value, ECHO_CAP) for key, value in params.items()}

    def _capped_data(self) -> Any:
        limits = {self.add_prefix(name): _echo_limit(field) for name, field in self.fields.items()}
        if isinstance(self.data, QueryDict):
            data = self.data.copy()
            for key in data:
                limit = limits.get(key, ECHO_CAP)
                data.setlist(key, [_cap(value, limit) for value in data.getlist(key)])
            return data
        return {key: _cap(value, limits.get(key, ECHO_CAP)) for key, value in self.data.items()}

    def to_request(self) -> GenerationRequest:
        return GenerationRequest.from_data(self.cleaned_data)

    def idempotency_key(self) -> str | None:
        """The form's one-time key as posted (None for a post without one)."""
        return self.cleaned_data.get(SUBMIT_KEY_FIELD) or None

    def renew_submit_key(self) -> None:
        """Draw the form again with a fresh key: the posted one was used for another request,
        and pressing the button again is the person's say-so for this one."""
        data = self.data.copy() if isinstance(self.data, QueryDict) else dict(self.data)
        data[SUBMIT_KEY_FIELD] = new_submit_key()
        self.data = data


class CreateForm(GenerationForm):
    """The create page's form: one video, or, with "One video per line" ticked, a batch.

    A batch is every non-blank line of the prompt (each validated like a prompt of its own) in
    the chosen aspect ratio and each one ticked under "Also make each in": at most
    ``MAX_BATCH`` jobs, queued together (``actions.create_generations``). Without the tick, line
    breaks are part of the one prompt, as before.
    """

    batch = forms.BooleanField(
        label="One video per line",
        required=False,
        help_text=f"Each line of the prompt becomes its own video (blank lines are skipped), "
        f"in every aspect ratio you tick. Up to {MAX_BATCH} videos.",
    )
    more_aspect_ratios = forms.MultipleChoiceField(
        label="Also make each one in",
        required=False,
        choices=[(r, f"{r} · {ASPECT_HINTS[r]}") for r in ASPECT_RATIOS],
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        prompt = cast("forms.CharField", self.fields["user_prompt"])
        # The page's script sets the textarea's maxlength to this in batch mode.
        prompt.widget.attrs["data-batch-maxlength"] = str(MAX_BATCH_TEXT)
        if self.batch_mode():
            # A batch holds up to MAX_BATCH lines; each line is held to MAX_PROMPT in clean().
            prompt.max_length = MAX_BATCH_TEXT
            prompt.validators = [
                v for v in prompt.validators if not isinstance(v, MaxLengthValidator)
            ] + [MaxLengthValidator(MAX_BATCH_TEXT)]

    def batch_mode(self) -> bool:
        """Whether "One video per line" was ticked in what was posted."""
        return self.is_bound and bool(
            self.fields["batch"].to_python(self.data.get(self.add_prefix("batch")))
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        text = data.get("user_prompt")
        if text is None or not data.get("batch"):
            return data
        prompts: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            if len(line) > MAX_PROMPT:
                self.add_error(
                    "user_prompt",
                    f"Line {number} is too long: a prompt has at most {MAX_PROMPT:,} characters "
                    f"(it has {len(line):,}).",
                )
            prompts.append(line)
        ratios = self.ratios()
        if refused := too_many_jobs(len(prompts), len(ratios)):
            self.add_error(None, refused)
        data["prompts"] = prompts
        return data

    def ratios(self) -> list[str]:
        """The chosen aspect ratio, then every other one ticked (batch mode only)."""
        first = self.cleaned_data.get("aspect_ratio") or "16:9"
        if not self.cleaned_data.get("batch"):
            return [first]
        more = self.cleaned_data.get("more_aspect_ratios") or []
        return [first, *(r for r in ASPECT_RATIOS if r in more and r != first)]

    def to_requests(self) -> list[GenerationRequest]:
        """One request per (line, aspect ratio), lines first; the keyframes go with each."""
        base = self.to_request()
        prompts = self.cleaned_data.get("prompts") or [base.user_prompt]
        return [
            dataclasses.replace(base, user_prompt=prompt, aspect_ratio=ratio)
            for prompt in prompts
            for ratio in self.ratios()
        ]

    def planned_jobs(self) -> int:
        """How many videos the form as drawn asks for (read from what was posted, valid or not:
        the page's cost line; ``app.js`` counts the same way as the person types)."""
        if not self.batch_mode():
            return 1
        text = str(self.data.get(self.add_prefix("user_prompt"), ""))
        lines = [line for line in text.splitlines() if line.strip()]
        first = self.data.get(self.add_prefix("aspect_ratio")) or "16:9"
        getlist = getattr(self.data, "getlist", None)
        more = set(getlist(self.add_prefix("more_aspect_ratios")) if getlist else []) - {first}
        return len(lines) * (1 + len(more & set(ASPECT_RATIOS)))


def frame_prefill(query: QueryDict) -> tuple[dict[str, str], str]:
    """The create page's initial frame keyframe from the detail page's "Use a frame" picker
    (``?frame_of=<id>&frame=<n>`` or ``&t=<seconds>``, ``&use=start|end``), and a warning when
    it cannot be used (the page then opens without it). Checked again when the form is sent."""
    source = query.get("frame_of", "")
    if not source:
        return {}, ""
    field = FRAME_SLOTS.get(query.get("use", "start"), "image_frame")
    try:
        resolved = frames.FrameRef.parse(source).resolve()
        t = frames.parse_t(query.get("t"))
        raw_index = query.get("frame", "").strip()
        if raw_index:
            if not raw_index.isdecimal() or len(raw_index) > 9:
                raise frames.FrameError("The frame must be a whole number, 0 for the first.")
            t = float(int(raw_index) / resolved.info.fps)
    except frames.FrameError as exc:
        return {}, f"That frame cannot be used: {exc}"
    index = resolved.info.index_at(t)
    seconds = None if index is None else resolved.info.seconds(index)
    return {field: str(frames.FrameRef(resolved.generation.pk, seconds))}, ""


def _echo_limit(field: forms.Field) -> int:
    """How much of a value an invalid form sends back: a text a little over its limit whole."""
    max_length = getattr(field, "max_length", None)
    return max_length + ECHO_OVERRUN if max_length else ECHO_CAP


def _cap(value: Any, limit: int) -> Any:
    """A string cut to ``limit`` characters; anything else as it is."""
    return value[:limit] if isinstance(value, str) and len(value) > limit else value


class ExtendForm(GenerationForm):
    """Extending: the prompt says what happens next; the aspect ratio follows the parent."""

    takes_frames = False

    aspect_ratio = forms.ChoiceField(choices=[(r, r) for r in ASPECT_RATIOS], required=False)

    def __init__(self, *args: Any, parent: Generation | None = None, **kwargs: Any) -> None:
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


# --- the Team page -------------------------------------------------------------------------------
def _in_unit(words: str) -> Any:
    """A label naming the provider's unit ("tokens", "credits"), read when it is shown (the
    forms are defined before the provider is known)."""
    return lazy(lambda: words.format(unit=money.unit()), str)()


class BudgetField(forms.Field):
    """An amount per calendar month in the provider's unit (tokens, credits): empty (or
    "none") for no limit; 2000000, 2,000,000 and 2_000_000 all read the same."""

    widget = forms.TextInput

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", _in_unit("Monthly budget ({unit})"))
        kwargs.setdefault("help_text", "Empty for no limit.")
        super().__init__(**kwargs)
        self.widget.attrs.update({"inputmode": "numeric", "placeholder": "no limit"})

    def to_python(self, value: Any) -> int | None:
        text = str(value or "").strip()
        if text.lower() in ("", "none", "no limit", "unlimited"):
            return None
        digits = re.sub(r"[,_\s]", "", text)
        if not re.fullmatch(r"[0-9]+", digits):  # ASCII only: "²".isdigit(), int("²") fails
            raise ValidationError(f"A whole number of {money.unit()} (or empty for no limit).")
        if len(digits) > 18:
            raise ValidationError(f"That is more {money.unit()} than lumaweb can count.")
        return int(digits)


def _role_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        choices=Role.choices,
        initial=DEFAULT_ROLE,
        help_text="Admins manage the team; creators may spend; viewers may only watch.",
    )


class AddMemberForm(forms.Form):
    """A new person: the password checked by the site's password validators."""

    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    password = forms.CharField(
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Tell them to change it after their first log-in.",
    )
    role = _role_field()
    budget = BudgetField()

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        validator = get_user_model().username_validator
        validator(username)
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise ValidationError("There is already someone with this username.")
        return username

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "username" in data and "password" in data:
            candidate = get_user_model()(username=data["username"])
            try:
                password_validation.validate_password(data["password"], user=candidate)
            except ValidationError as exc:
                self.add_error("password", exc)
        return data


class MemberForm(forms.Form):
    """A person's role and monthly budget (one row of the members table)."""

    role = _role_field()
    budget = BudgetField()


class TeamBudgetForm(forms.Form):
    budget = BudgetField(
        label=_in_unit("Team budget ({unit} a month; empty for no limit)"), help_text=""
    )
