"""The JSON API at /api/v1: lumaweb's own, shaped like the upstream's objects.

Session or personal-token auth. Bad input answers 400 with field errors; never 500.
Every generation answered is read through ``queries.with_card_fields``, the pages' own query, so
``liked`` and the counts mean the same in the JSON as on a card, at a fixed number of queries.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, ParamSpec, cast

from django import forms
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_http_methods

from generations import actions, provider_fields, queries
from generations.api.errors import json_error, json_object
from generations.api.openapi import SCHEMA, request_body_schema
from generations.api.serializers import generation_json
from generations.api.sources import sources_of
from generations.forms import (
    MAX_BATCH,
    ExtendForm,
    GenerationForm,
    clean_prompt,
    too_many_jobs,
)
from generations.inputs import GenerationRequest
from generations.models import Generation

# A batch in one create: these lists stand for ``user_prompt`` and ``aspect_ratio``.
BATCH_FIELDS = {"user_prompts": "user_prompt", "aspect_ratios": "aspect_ratio"}

# A frame of a finished video as a keyframe (generations/frames.py): the API's names ->
# the form's reference fields (``<id>`` or ``<id>@<seconds>``). Creates only.
FRAME_FIELDS = {"start_frame": "image_frame", "end_frame": "image_end_frame"}
FRAME_SHAPE = '{"generation_id": "<uuid>", "t": <seconds>} ("t" left out: the last frame)'

MAX_IDS = 100
MAX_KEY = 255
IDEMPOTENCY_HEADER = "Idempotency-Key"
JSON_TYPES: dict[str, Any] = {"string": str, "boolean": bool, "integer": int}
SCHEMA_BODY = request_body_schema()  # the request fields and their JSON types, from the form
TYPE_WORDS = {"string": "a string", "boolean": "true or false", "integer": "a whole number"}

P = ParamSpec("P")
View = Callable[Concatenate[HttpRequest, P], HttpResponse]


_error = json_error  # every answer of the API that is not a success has this shape


def api_view(*methods: str) -> Callable[[View[P]], View[P]]:
    """Login (session or token) answered as JSON 401 rather than a redirect."""

    def decorate(view: View[P]) -> View[P]:
        @login_not_required
        @require_http_methods(list(methods))
        @wraps(view)
        def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return _error(401, "Authentication required: log in or send a Bearer token.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def _json_body(request: HttpRequest) -> dict[str, Any] | JsonResponse:
    """The body's fields without its nulls, or the 400 answer that says what is wrong."""
    data = json_object(request)
    if isinstance(data, JsonResponse):
        return data
    problems: dict[str, list[str]] = {}
    for name, schema in SCHEMA_BODY["properties"].items():
        value = data.get(name)
        wanted = schema.get("type")
        if value is None or wanted is None:  # (concepts: a list or a string, the form checks)
            continue
        if not isinstance(value, JSON_TYPES[wanted]) or (
            wanted == "integer" and isinstance(value, bool)
        ):
            problems[name] = [f"Must be {TYPE_WORDS[wanted]}."]
        elif isinstance(value, str) and not _is_text(value):
            problems[name] = ["Must be valid Unicode text."]
    if problems:
        return _error(400, "Some fields are not valid.", problems)
    return {k: v for k, v in data.items() if v is not None}


def _is_text(value: str) -> bool:
    """JSON can carry lone surrogates ("\\ud800"); no database can store them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refused(exc: actions.ServiceError) -> JsonResponse:
    """An action refused: 403 for who may not, 402 (with what is left and what it would cost)
    for over budget, 409 for the state of the row."""
    if isinstance(exc, actions.OverBudget):
        return JsonResponse({"error": str(exc), "budget": exc.budget}, status=402)
    return _error(403 if isinstance(exc, actions.NotAllowed) else 409, str(exc))


def _may_not_spend(request: HttpRequest) -> JsonResponse | None:
    try:
        actions.check_can_spend(request.user)
    except actions.NotAllowed as exc:
        return _refused(exc)
    return None


def _spending_request(request: HttpRequest) -> tuple[str | None, dict[str, Any]] | JsonResponse:
    """What a create or an extend asks, in the order its refusals are answered: a viewer's 403
    before the body is read, then a malformed ``Idempotency-Key``, then a body that is no JSON
    object. Returns (the key or None, the body) or the refusal."""
    if refused := _may_not_spend(request):
        return refused
    key = _idempotency_key(request)
    if isinstance(key, JsonResponse):
        return key
    data = _json_body(request)
    if isinstance(data, JsonResponse):
        return data
    return key, data


def _form_errors(form: forms.BaseForm) -> JsonResponse:
    # An ErrorList yields its messages (text, or lazy text that JSON writes the same way). A
    # frame's errors are told under the API's name for it.
    api_name = {field: name for name, field in FRAME_FIELDS.items()}
    fields = {
        api_name.get(name, name): [str(message) for message in errors]
        for name, errors in form.errors.items()
    }
    return _error(400, "Some fields are not valid.", fields)


def _created(gen: Generation, request: HttpRequest) -> JsonResponse:
    """A new row as it was committed (``queued``: a worker may have taken it since, which the
    next GET shows), with the card fields every new row has: nobody likes it yet, nothing
    extends it. Same fields as a GET, no second read that could race the worker."""
    return JsonResponse(_new_json(gen, request), status=201)


def _new_json(gen: Generation, request: HttpRequest) -> dict[str, Any]:
    card = cast("queries.Card", gen)
    card.liked, card.like_count, card.extension_count = False, 0, 0
    return generation_json(card, request)


def _idempotency_key(request: HttpRequest) -> str | JsonResponse | None:
    """The request's ``Idempotency-Key`` (None without one), or the 400 that says what is wrong:
    1 to 255 visible ASCII characters (a UUID is a good choice)."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY or not all("!" <= c <= "~" for c in key):
        return _error(400, f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY} visible ASCII characters.")
    return key


def _create(
    request: HttpRequest,
    form: GenerationForm,
    key: str | None,
    parent: Generation | None = None,
    sources: actions.Sources | None = None,
) -> HttpResponse:
    """Queue what ``form`` asks for under ``key``: 201 with the new generation; the same 201
    with the first one (and ``Idempotent-Replayed: true``) when the key was used for this very
    request; 422 when it was used for another; 409 when the service refuses."""
    try:
        gen = actions.create_generation(
            request.user, form.to_request(), parent=parent, idempotency_key=key, sources=sources
        )
    except actions.AlreadySubmitted as replay:
        if replay.generation is None:
            return _error(
                409,
                f"The generation made with this {IDEMPOTENCY_HEADER} has been deleted; "
                "send a new key to make another.",
            )
        # The first generation as it is now (a worker may have moved it on), with its likes.
        first = queries.card(replay.generation.pk, request.user)
        response = JsonResponse(generation_json(first, request), status=201)
        response["Idempotent-Replayed"] = "true"
        return response
    except actions.KeyReused as exc:
        return _error(422, str(exc))
    except actions.ServiceError as exc:
        return _refused(exc)
    return _created(gen, request)


def _batch_items(data: dict[str, Any]) -> dict[str, list[Any]] | JsonResponse:
    """The batch lists of a create body, each item cleaned by its single field's form field,
    or the 400 that says which item is wrong."""
    fields = GenerationForm.base_fields
    lists: dict[str, list[Any]] = {}
    problems: dict[str, list[str]] = {}
    for name, single in BATCH_FIELDS.items():
        items = data.get(name)
        if items is None:
            continue
        if single in data:
            problems[name] = [f"Send {single} or {name}, not both."]
            continue
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            # Counted before any item is cleaned: a list of 100,000 is refused at once.
            problems[name] = [
                f"Must be a list of 1 to {MAX_BATCH} strings: at most {MAX_BATCH} a batch."
            ]
            continue
        cleaned, wrong = [], []
        for number, item in enumerate(items, start=1):
            try:
                if not isinstance(item, str) or not _is_text(item):
                    raise forms.ValidationError("Must be a string.")
                value = fields[single].clean(item)
                if single == "user_prompt":
                    value = clean_prompt(value)
                cleaned.append(value)
            except forms.ValidationError as exc:
                wrong += [f"Item {number}: {message}" for message in exc.messages]
            if len(wrong) >= 5:  # enough to fix; a huge list is not echoed item by item
                break
        if wrong:
            problems[name] = wrong
        lists[name] = cleaned
    if not problems:
        prompts = len(lists.get("user_prompts", [None]))
        ratios = len(lists.get("aspect_ratios", [None]))
        if refused := too_many_jobs(prompts, ratios):
            problems["user_prompts" if "user_prompts" in lists else "aspect_ratios"] = [refused]
    if problems:
        return _error(400, "Some fields are not valid.", problems)
    return lists


def _create_batch(request: HttpRequest, data: dict[str, Any], key: str | None) -> HttpResponse:
    """A create with ``user_prompts`` and/or ``aspect_ratios``: every pair, in one batch (all
    or nothing, one ``Idempotency-Key`` for all): 201 with ``{"generations": [...]}``."""
    lists = _batch_items(data)
    if isinstance(lists, JsonResponse):
        return lists
    single = {k: v for k, v in data.items() if k not in BATCH_FIELDS}
    for name, field in BATCH_FIELDS.items():
        if name in lists:
            single[field] = lists[name][0]  # the other fields are checked once, with the first
    form = GenerationForm({**GenerationRequest.defaults(), **single})
    if not form.is_valid():
        return _form_errors(form)
    base = form.to_request()
    asked = [
        dataclasses.replace(base, user_prompt=prompt, aspect_ratio=ratio)
        for prompt in lists.get("user_prompts", [base.user_prompt])
        for ratio in lists.get("aspect_ratios", [base.aspect_ratio])
    ]
    try:
        made = actions.create_generations(request.user, asked, idempotency_key=key)
    except actions.AlreadySubmitted as replay:
        if not replay.generations:
            return _error(
                409,
                f"The generations made with this {IDEMPOTENCY_HEADER} have been deleted; "
                "send a new key to make others.",
            )
        order = [gen.pk for gen in replay.generations]
        rows = queries.with_card_fields(Generation.objects.filter(pk__in=order), request.user)
        by_pk = {gen.pk: gen for gen in rows}
        answer = [generation_json(by_pk[pk], request) for pk in order if pk in by_pk]
        response = JsonResponse({"generations": answer}, status=201)
        response["Idempotent-Replayed"] = "true"
        return response
    except actions.KeyReused as exc:
        return _error(422, str(exc))
    except actions.ServiceError as exc:
        return _refused(exc)
    return JsonResponse({"generations": [_new_json(gen, request) for gen in made]}, status=201)


def _frame_fields(data: dict[str, Any]) -> dict[str, Any] | JsonResponse:
    """A create body with ``start_frame`` / ``end_frame`` turned into the form's frame
    references (checked there: a finished video with a local copy, a good ``t``), or the 400
    that says what is wrong with their shape. The form's own field names are not the API's."""
    out = {k: v for k, v in data.items() if k not in FRAME_FIELDS.values()}
    problems: dict[str, list[str]] = {}
    for name, field in FRAME_FIELDS.items():
        value = out.pop(name, None)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems[name] = [f"Must be an object: {FRAME_SHAPE}."]
            continue
        if set(value) - {"generation_id", "t"}:
            problems[name] = [f"Only generation_id and t: {FRAME_SHAPE}."]
            continue
        pk, t = value.get("generation_id"), value.get("t")
        if not isinstance(pk, str) or "@" in pk:
            problems[name] = ["generation_id must be a generation id (a UUID string)."]
        elif t is not None and (isinstance(t, bool) or not isinstance(t, int | float)):
            problems[name] = ["t must be a number of seconds, such as 2.5 (left out: the last)."]
        else:
            out[field] = pk if t is None else f"{pk}@{t!r}"
    if problems:
        return _error(400, "Some fields are not valid.", problems)
    return out


def _create_from(
    request: HttpRequest, data: dict[str, Any], key: str | None, sources: actions.Sources
) -> HttpResponse:
    """A create made from finished videos (``start_generation_id`` / ``end_generation_id``):
    an extension's form (the shape follows the first source), one video, no frame keyframes."""
    mixed = (BATCH_FIELDS.keys() | FRAME_FIELDS.values()) & data.keys()
    if mixed:
        return _error(
            400,
            "start_generation_id and end_generation_id make one video from other videos: "
            f"leave out {', '.join(sorted(mixed))}.",
        )
    form = ExtendForm({**GenerationRequest.defaults(), **data}, parent=sources.parent)
    if not form.is_valid():
        return _form_errors(form)
    return _create(request, form, key, sources=sources)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError):
        return None


@api_view("GET")
def openapi_schema(request: HttpRequest) -> HttpResponse:
    return JsonResponse(SCHEMA)


@api_view("GET", "POST")
def generations_collection(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        asked = _spending_request(request)
        if isinstance(asked, JsonResponse):
            return asked
        key, body = asked
        data = _frame_fields(body)
        if isinstance(data, JsonResponse):
            return data
        if refused := provider_fields.refusals(data):  # an option the provider cannot do
            return _error(400, "Some fields are not valid.", {k: [v] for k, v in refused.items()})
        sources = sources_of(data)
        if isinstance(sources, JsonResponse):
            return sources
        if sources is not None:
            return _create_from(request, data, key, sources)
        if BATCH_FIELDS.keys() & data.keys():
            return _create_batch(request, data, key)
        form = GenerationForm({**GenerationRequest.defaults(), **data})
        if not form.is_valid():
            return _form_errors(form)
        return _create(request, form, key)

    raw_ids = [part for part in request.GET.get("ids", "").split(",") if part.strip()]
    query = queries.with_card_fields(Generation.objects.all(), request.user)
    if raw_ids:
        if len(raw_ids) > MAX_IDS:
            return _error(400, f"At most {MAX_IDS} ids at a time.")
        ids = [_uuid_or_none(part.strip()) for part in raw_ids]
        if None in ids:
            return _error(400, "Every id must be a generation id (a UUID).")
        query = query.filter(pk__in=ids)
    else:
        query = query.order_by("-created_at")[:50]
    return JsonResponse([generation_json(gen, request) for gen in query], safe=False)


@api_view("GET", "DELETE")
def generation_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    if request.method == "DELETE":
        gen = get_object_or_404(Generation.objects.select_related("created_by"), pk=pk)
        try:
            actions.delete_generation(gen, request.user)
        except actions.ServiceError as exc:
            return _refused(exc)
        return HttpResponse(status=204)
    gen = get_object_or_404(queries.with_card_fields(Generation.objects.all(), request.user), pk=pk)
    return JsonResponse(generation_json(gen, request))


@api_view("POST")
def generation_extend(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    parent = get_object_or_404(Generation, pk=pk)
    asked = _spending_request(request)
    if isinstance(asked, JsonResponse):
        return asked
    key, data = asked
    if refused := provider_fields.refusals(data):  # an option the provider cannot do
        return _error(400, "Some fields are not valid.", {k: [v] for k, v in refused.items()})
    form = ExtendForm(data, parent=parent)
    if not form.is_valid():
        return _form_errors(form)
    return _create(request, form, key, parent=parent)
