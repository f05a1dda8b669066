"""The request options only some providers can do, as form fields (issue 11 #2).

``GenerationForm`` asks ``fit_form`` for its option fields: a provider that can do an option
(``Capabilities.accepts``) gets a field built from its lists and defaults (a select of its
models, resolutions, durations; a loop checkbox; a picker of its concept keys); one that cannot
gets none, so the page is drawn as before, and a request that sets one anyway is refused by
``refusals`` with a reason that names the field and the provider (never dropped silently). The
pages and the JSON API share these rules through the form; ``actions`` checks them once more.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.functional import lazy

from generations import providers
from generations.inputs import GenerationRequest

log = logging.getLogger(__name__)

# What each option lets a person do, for the refusal ("<provider> cannot choose the model").
CANNOT = {
    "model": "choose the model",
    "resolution": "choose the resolution",
    "duration": "choose the duration",
    "loop": "make a looping video",
    "concepts": "take camera-motion concepts",
    "expand_prompt": "rewrite the prompt (expand_prompt)",
}
# Fields every provider so far has, that one may lack (``Capabilities``): checked like options.
OPTIONAL_FIELDS = ("expand_prompt",)


def concepts() -> list[str]:
    """The current provider's concept keys (the provider keeps its list cached); empty when it
    has none, or when asking failed (the picker is then empty, and says so: never a stack
    trace)."""
    provider = providers.current()
    if not provider.capabilities.concepts:
        return []
    try:
        return [str(k) for k in provider.concepts()]
    except Exception:  # the service answers nonsense the provider did not expect: no picker
        log.warning("The provider's concept list could not be fetched", exc_info=True)
        return []


class ConceptsField(forms.MultipleChoiceField):
    """Concept keys: checkboxes on a page, a list or a comma-separated string in the API;
    cleaned to the comma-separated string the row stores. Its choices are the provider's list,
    asked for when the field is first drawn or validated (not when a form is made)."""

    widget = forms.CheckboxSelectMultiple

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if value and not isinstance(value, list | tuple):
            raise ValidationError("A list of concept keys, or one comma-separated string.")
        if any(not isinstance(part, str) for part in value or []):
            raise ValidationError("Each concept is a key (a string).")
        return super().to_python(value)

    def validate(self, value: Any) -> None:
        keys = [key for key, _ in concept_choices()]
        unknown = [part for part in value if part not in keys]
        if unknown:
            raise ValidationError(
                f"Not a concept: {', '.join(unknown)[:200]}; choose from: {_allowed(keys)}.",
                code="invalid_choice",
            )

    def clean(self, value: Any) -> str:
        return ",".join(super().clean(value))


def _concepts_help() -> str:
    if concepts():
        return "Camera moves to use (optional)."
    return "None to pick: the service's list of concepts could not be fetched just now."


def concept_choices() -> list[tuple[str, str]]:
    return [(key, key.replace("_", " ")) for key in concepts()]


def _allowed(values: list[str] | tuple[str, ...]) -> str:
    return ", ".join(values) if values else "none available now"


def _choice(label: str, values: tuple[str, ...], default: str, help_text: str) -> forms.Field:
    return forms.ChoiceField(
        label=label,
        choices=[(v, v) for v in values],
        initial=default,
        required=False,  # left out: the provider's default
        help_text=help_text,
        error_messages={
            "invalid_choice": f"“%(value)s” is not offered; choose one of: {_allowed(values)}."
        },
    )


def option_fields(caps: providers.Capabilities) -> dict[str, forms.Field]:
    """The fields for the options ``caps`` accepts, in ``GenerationRequest.options()`` order."""
    fields: dict[str, forms.Field] = {}
    if caps.accepts("model"):
        fields["model"] = _choice(
            "Model", caps.models, caps.default_model, "Which of the service's models makes it."
        )
    if caps.accepts("resolution"):
        fields["resolution"] = _choice(
            "Resolution", caps.resolutions, caps.default_resolution, "Higher costs more."
        )
    if caps.accepts("duration"):
        fields["duration"] = _choice(
            "Duration", caps.durations, caps.default_duration, "How long the video runs."
        )
    if caps.accepts("loop"):
        fields["loop"] = forms.BooleanField(
            label="Loop", required=False, help_text="The last frame leads back into the first."
        )
    if caps.accepts("concepts"):
        fields["concepts"] = ConceptsField(
            label="Camera concepts",
            required=False,
            choices=concept_choices,
            help_text=lazy(_concepts_help, str)(),
        )
    return fields


def fit_form(form: forms.BaseForm) -> None:
    """Give ``form`` the current provider's option fields, and take away the others."""
    caps = providers.current().capabilities
    wanted = option_fields(caps)
    for name in GenerationRequest.options():
        form.fields.pop(name, None)
        if name in wanted:
            form.fields[name] = wanted[name]
    for name in OPTIONAL_FIELDS:
        if not caps.accepts(name):
            form.fields.pop(name, None)


def _sets(name: str, value: Any) -> bool:
    """Whether a raw value (a form's or the JSON body's) asks for something other than the
    default: a loop that is on, a list of concepts that is not empty, any other text."""
    if name in ("loop", "expand_prompt"):
        return bool(forms.BooleanField(required=False).to_python(value))
    if isinstance(value, list | tuple):
        return any(str(v).strip() for v in value)
    return value not in (None, "") and str(value).strip() != ""


def refusal(name: str, provider: providers.Provider | None = None) -> str:
    provider = provider or providers.current()
    return f"{name}: {provider.label} cannot {CANNOT.get(name, 'take ' + name)}."


def refusals(data: Any) -> dict[str, str]:
    """For each option ``data`` sets that the current provider cannot do: why it is refused."""
    provider = providers.current()
    caps = provider.capabilities
    found: dict[str, str] = {}
    getlist = getattr(data, "getlist", None)
    for name in GenerationRequest.options() + OPTIONAL_FIELDS:
        if name not in data or caps.accepts(name):
            continue
        value = getlist(name) if getlist and name == "concepts" else data.get(name)
        if _sets(name, value):
            found[name] = refusal(name, provider)
    return found


def unsupported(request: GenerationRequest) -> list[str]:
    """The options a stored request sets that the current provider cannot do (``actions``)."""
    caps = providers.current().capabilities
    chosen = [*request.chosen_options(), *(n for n in OPTIONAL_FIELDS if getattr(request, n))]
    return [name for name in chosen if not caps.accepts(name)]
