"""The OpenAPI 3.0 description of /api/v1, served at /api/v1/openapi.json.

Written by hand (the API is a handful of operations), except the request body, which is derived from
the create form and so from ``GenerationRequest``: a new request field appears here by itself.
tests/test_fuzz.py drives schemathesis with it, so a drift between the two shows up as failures.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms

from generations.forms import MAX_BATCH, GenerationForm
from generations.inputs import GenerationRequest
from generations.models import Role, Status
from generations.shares import MAX_EXPIRY_DAYS


def _field_schema(field: forms.Field) -> dict[str, Any]:
    """The JSON schema of one form field (the types the request fields use)."""
    if isinstance(field, forms.BooleanField):
        return {"type": "boolean"}
    if isinstance(field, forms.IntegerField):
        schema: dict[str, Any] = {"type": "integer"}
        if field.min_value is not None:
            schema["minimum"] = field.min_value
        if field.max_value is not None:
            schema["maximum"] = field.max_value
        return schema
    if isinstance(field, forms.ChoiceField):
        # django-stubs gives the getter the setter's type (callables, enums, mappings); Django
        # normalises choices on assignment, so reading them gives (value, label) pairs.
        choices: Iterable[tuple[Any, Any]] = field.choices  # type: ignore[assignment]
        return {"type": "string", "enum": [str(value) for value, _ in choices if value != ""]}
    schema = {"type": "string"}
    if isinstance(field, forms.URLField):
        schema["format"] = "uri"
    max_length = getattr(field, "max_length", None)  # text and file fields have one
    if max_length:
        schema["maxLength"] = max_length
    if field.required:
        schema["minLength"] = 1
    return schema


def request_body_schema() -> dict[str, Any]:
    """A create or extend body: the request fields of the create form (uploads are pages-only)."""
    # The class's fields under the instance's: a provider may take one away (expand_prompt).
    fields = {**GenerationForm.base_fields, **GenerationForm().fields}
    defaults = GenerationRequest.defaults()
    skipped = set(GenerationRequest.uploads()) | set(GenerationRequest.options())
    names = [n for n in GenerationRequest.field_names() if n not in skipped]
    return {
        "type": "object",
        "required": [n for n in names if fields[n].required and n not in defaults],
        "properties": {
            **{n: _field_schema(fields[n]) for n in names},
            **OPTION_SCHEMAS,
            **SOURCE_SCHEMAS,
        },
    }


# The options only some providers can do: their allowed values are the provider's, read at
# GET /provider (capabilities); one the provider cannot do answers 400 naming it.
_OPTION_NOTE = " Only where the provider can (GET /provider: capabilities); else 400."
OPTION_SCHEMAS: dict[str, Any] = {
    "model": {"type": "string", "description": "One of capabilities.models." + _OPTION_NOTE},
    "resolution": {
        "type": "string",
        "description": "One of capabilities.resolutions." + _OPTION_NOTE,
    },
    "duration": {
        "type": "string",
        "description": "One of capabilities.durations." + _OPTION_NOTE,
    },
    "loop": {"type": "boolean", "description": "A looping video." + _OPTION_NOTE},
    "concepts": {
        "description": "Concept keys (GET /provider: concepts), a list or a comma-separated "
        "string." + _OPTION_NOTE,
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    },
}
# Creates only: the videos a new one starts from or leads into (start only: an extension; end
# only: what came before the end video; both: an interpolation from start to end).
SOURCE_SCHEMAS: dict[str, Any] = {
    "start_generation_id": {
        "type": "string",
        "format": "uuid",
        "description": "A finished video to continue from (its last frame starts this one).",
    },
    "end_generation_id": {
        "type": "string",
        "format": "uuid",
        "description": "A finished video to lead into (this one ends where it begins); "
        "only where capabilities.reverse_extend (alone) or capabilities.interpolate (with "
        "start_generation_id).",
    },
}


_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_GENERATION = {
    "type": "object",
    "required": [
        "id",
        "status",
        "user_prompt",
        "aspect_ratio",
        "video",
        "created_at",
        "liked",
        "like_count",
        "extension_count",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "remote_id": _NULLABLE_STRING,
        "status": {"type": "string", "enum": [s.value for s in Status]},
        "state": _NULLABLE_STRING,
        "user_prompt": {"type": "string"},
        "prompt": _NULLABLE_STRING,
        "aspect_ratio": {"type": "string"},
        "expand_prompt": {"type": "boolean"},
        "image_url": _NULLABLE_STRING,
        "image_end_url": _NULLABLE_STRING,
        "parent_id": {"type": "string", "format": "uuid", "nullable": True},
        "parent_removed": {
            "type": "boolean",
            "description": "An extension of a video its owner deleted (parent_id is then null)",
        },
        "created_by": _NULLABLE_STRING,
        "created_at": {"type": "string", "format": "date-time"},
        "completed_at": {"type": "string", "format": "date-time", "nullable": True},
        "estimate_wait_seconds": {"type": "integer", "nullable": True},
        "error": _NULLABLE_STRING,
        "error_request_id": _NULLABLE_STRING,
        "liked": {"type": "boolean", "description": "Whether the caller likes it"},
        "like_count": {"type": "integer", "minimum": 0},
        "extension_count": {"type": "integer", "minimum": 0, "description": "Direct extensions"},
        "video": {
            "type": "object",
            "properties": {
                "url": _NULLABLE_STRING,
                "thumbnail": _NULLABLE_STRING,
                "width": {"type": "integer"},
                "height": {"type": "integer"},
                "local": {"type": "boolean", "description": "url is lumaweb's own copy"},
                "upstream_url": {
                    **_NULLABLE_STRING,
                    "description": "The service's link to the video (expires)",
                },
            },
        },
    },
}
_BODY = request_body_schema()
_LIMIT = {
    "type": "object",
    "properties": {
        "budget": {"type": "integer", "nullable": True},
        "used": {"type": "integer"},
        "left": {"type": "integer", "nullable": True},
    },
}
_OVER_BUDGET = {
    "type": "object",
    "required": ["error", "budget"],
    "properties": {
        "error": {"type": "string"},
        "budget": {
            "type": "object",
            "required": ["exceeded", "cost", "left", "person", "team"],
            "properties": {
                "exceeded": {"type": "string", "enum": ["person", "team"]},
                "cost": {"type": "integer"},
                "left": {"type": "integer", "nullable": True},
                "person": _LIMIT,
                "team": _LIMIT,
            },
        },
    },
}


_TOKENS = {"type": "integer", "minimum": 0}
_NULLABLE_TOKENS = {"type": "integer", "minimum": 0, "nullable": True}
_FIGURES = {
    "spent": {**_TOKENS, "description": "Tokens of requests that went out, possibly included"},
    "possibly": {**_TOKENS, "description": "Of spent, the part the service never confirmed"},
    "reserved": {**_TOKENS, "description": "Tokens of queued jobs, not sent yet"},
    "refunded": {**_TOKENS, "description": "Failed by the service after starting: not counted"},
    "generations": {**_TOKENS, "description": "Jobs counted in this month (deleted ones too)"},
}
_USAGE_FIGURES = {"type": "object", "required": list(_FIGURES), "properties": _FIGURES}
_LINE = {
    "budget": {**_NULLABLE_TOKENS, "description": "Monthly budget (today's); null: no limit"},
    "remaining": {**_NULLABLE_TOKENS, "description": "Budget less spent and reserved"},
}
_USER = {"type": "string", "nullable": True, "description": "null: jobs of no one (admins)"}
_USAGE = {
    "type": "object",
    "required": ["month", "unit", "cost_per_generation", "team", "people", "days", "months"],
    "properties": {
        "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
        "unit": {
            "type": "string",
            "enum": ["tokens", "credits"],
            "description": "What every amount counts in: the provider's unit (credits: US cents)",
        },
        "cost_per_generation": {
            **_TOKENS,
            "description": "One generation with the provider's default options, in unit",
        },
        "unpriced": {
            **_TOKENS,
            "description": "The team's jobs made before per-row prices, in another unit: "
            "counted at no price",
        },
        "team": {
            "type": "object",
            "required": [*_FIGURES, *_LINE],
            "properties": {**_FIGURES, **_LINE},
        },
        "people": {
            "type": "array",
            "description": "The caller's own line; everyone's for an admin",
            "items": {
                "type": "object",
                "required": ["user", "role", *_FIGURES, *_LINE],
                "properties": {
                    "user": _USER,
                    "role": {"type": "string", "nullable": True, "enum": [*Role.values, None]},
                    **_FIGURES,
                    **_LINE,
                },
            },
        },
        "days": {
            "type": "array",
            "description": "Every day of the month (UTC), in order",
            "items": {
                "type": "object",
                "required": ["date", "team", "people"],
                "properties": {
                    "date": {"type": "string", "format": "date"},
                    "team": _USAGE_FIGURES,
                    "people": {
                        "type": "array",
                        "description": "Those of people the caller may see with a job that day",
                        "items": {
                            "type": "object",
                            "required": ["user", *_FIGURES],
                            "properties": {"user": _USER, **_FIGURES},
                        },
                    },
                },
            },
        },
        "months": {
            "type": "array",
            "description": "Months with any usage, and this month, newest first",
            "items": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
        },
    },
}


def _responses(ok: str, schema: dict, *codes: str) -> dict:
    out = {ok: {"description": "OK", "content": {"application/json": {"schema": schema}}}}
    for code in ("400", "401", *codes):
        out[code] = {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
    return out


def _spending(ok: str, schema: dict, *codes: str) -> dict:
    """A request that may cost money: also 403 (a viewer) and 402 (over budget)."""
    out = _responses(ok, schema, "403", *codes)
    out["402"] = {
        "description": "over this month's budget (the person's or the team's)",
        "content": {"application/json": {"schema": _OVER_BUDGET}},
    }
    return out


def _json_body(schema: dict | None = None) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema or _BODY}}}


def _list_of(field: str) -> dict:
    return {
        "type": "array",
        "items": _BODY["properties"][field],
        "minItems": 1,
        "maxItems": MAX_BATCH,
    }


# A create may be a batch: ``user_prompts`` instead of ``user_prompt`` and/or ``aspect_ratios``
# instead of ``aspect_ratio``, every pair queued (at most MAX_BATCH), answered as a list.
_CREATE_BODY = {
    **_BODY,
    "required": [n for n in _BODY["required"] if n != "user_prompt"],
    "anyOf": [{"required": ["user_prompt"]}, {"required": ["user_prompts"]}],
    "properties": {
        **_BODY["properties"],
        "user_prompts": _list_of("user_prompt"),
        "aspect_ratios": _list_of("aspect_ratio"),
    },
}
# A frame of a finished video (one with a local copy) as the start or end keyframe (creates).
_FRAME = {
    "type": "object",
    "required": ["generation_id"],
    "additionalProperties": False,
    "description": "A frame of a finished video, extracted and stored like an uploaded keyframe "
    "(give a frame, an image URL, or neither for each end, not both)",
    "properties": {
        "generation_id": {"type": "string", "format": "uuid"},
        "t": {
            "type": "number",
            "minimum": 0,
            "description": "Seconds into the video: the nearest frame; past the end, or left "
            "out, the last frame",
        },
    },
}
_CREATE_BODY["properties"]["start_frame"] = _FRAME
_CREATE_BODY["properties"]["end_frame"] = _FRAME
_BATCH = {
    "type": "object",
    "required": ["generations"],
    "properties": {"generations": {"type": "array", "items": _GENERATION}},
}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_BOARD_ID = {"name": "board_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_GENERATION_ID = {
    "name": "generation_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
_BOARD: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "shared", "owner", "count", "created_at", "url"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "shared": {"type": "boolean", "description": "Seen by the whole team (else its owner's)"},
        "owner": _NULLABLE_STRING,
        "count": {"type": "integer", "minimum": 0},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "url": {"type": "string", "description": "The board's page"},
        "download_url": {"type": "string", "description": "Its videos as one ZIP"},
        "cover": {**_NULLABLE_STRING, "description": "The last added video's thumbnail"},
        "can_manage": {"type": "boolean", "description": "The caller may rename or delete it"},
    },
}
_BOARD_WITH_VIDEOS = {
    **_BOARD,
    "required": [*_BOARD["required"], "generations"],
    "properties": {
        **_BOARD["properties"],
        "generations": {
            "type": "array",
            "description": "Most recently added first",
            "items": _GENERATION,
        },
    },
}
_NEW_BOARD = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "shared": {"type": "boolean", "default": False},
    },
}
_NEW_ITEM = {
    "type": "object",
    "required": ["generation_id"],
    "properties": {"generation_id": {"type": "string", "format": "uuid"}},
}


def _no_content(what: str, *codes: str) -> dict:
    return {
        "204": {"description": what},
        **{
            code: {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
            for code in ("401", *codes)
        },
    }


# Share links (generations/api/shares.py).
_SHARE_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "expires_in_days": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_EXPIRY_DAYS,
            "nullable": True,
            "description": "null (or left out): the link never expires",
        },
        "show_prompts": {"type": "boolean", "description": "The page shows the prompts"},
    },
}
_SHARE_MADE_FIELDS = {
    "url": {"type": "string", "description": "Absolute: on PUBLIC_BASE_URL when it is set"},
    "token": {"type": "string"},
    "expires_at": {"type": "string", "format": "date-time", "nullable": True},
    "show_prompts": {"type": "boolean"},
}
_SHARE_MADE = {
    "type": "object",
    "required": ["url", "token", "expires_at"],
    "properties": _SHARE_MADE_FIELDS,
}
_SHARE = {
    "type": "object",
    "required": ["token", "url", "kind", "status", "created_at", "expires_at", "views"],
    "properties": {
        **_SHARE_MADE_FIELDS,
        "token": _NULLABLE_STRING,
        "url": {**_NULLABLE_STRING, "description": "Absolute; null when hidden is set"},
        "hidden": {
            **_NULLABLE_STRING,
            "description": "Set for a link to a board the caller cannot see (someone's private"
            " board): then token, url and board_id are null",
        },
        "kind": {"type": "string", "enum": ["generation", "board"]},
        "generation_id": {"type": "string", "format": "uuid", "nullable": True},
        "board_id": {"type": "integer", "nullable": True},
        "created_by": _NULLABLE_STRING,
        "created_at": {"type": "string", "format": "date-time"},
        "revoked_at": {"type": "string", "format": "date-time", "nullable": True},
        "views": {"type": "integer", "minimum": 0},
        "last_viewed_at": {"type": "string", "format": "date-time", "nullable": True},
        "status": {"type": "string", "enum": ["live", "expired", "revoked"]},
    },
}
_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}

SCHEMA = {
    "openapi": "3.0.3",
    "info": {"title": "lumaweb API", "version": "1"},
    "servers": [{"url": "/api/v1"}],
    "security": [{"token": []}, {"session": []}],
    "components": {
        "securitySchemes": {
            "token": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
        }
    },
    "paths": {
        "/generations": {
            "get": {
                "summary": "Generations by id (ids=a,b), or the 50 newest",
                "parameters": [
                    {"name": "ids", "in": "query", "required": False, "schema": {"type": "string"}}
                ],
                "responses": _responses("200", {"type": "array", "items": _GENERATION}),
            },
            "post": {
                "summary": "Queue a new generation, or a batch of up to "
                f"{MAX_BATCH} (user_prompts and/or aspect_ratios: every pair)",
                "requestBody": _json_body(_CREATE_BODY),
                "responses": _spending("201", {"oneOf": [_GENERATION, _BATCH]}, "409", "422"),
            },
        },
        "/generations/{id}": {
            "parameters": [_ID],
            "get": {
                "summary": "One generation",
                "responses": _responses("200", _GENERATION, "404"),
            },
            "delete": {
                "summary": "Delete a finished generation (owner or admin)",
                "responses": {
                    "204": {"description": "deleted"},
                    **{
                        code: {
                            "description": "error",
                            "content": {"application/json": {"schema": _ERROR}},
                        }
                        for code in ("401", "403", "404", "409")
                    },
                },
            },
        },
        "/usage": {
            "get": {
                "summary": "A month's usage: the team's, the caller's (everyone's for an admin)",
                "parameters": [
                    {
                        "name": "month",
                        "in": "query",
                        "required": False,
                        "description": "YYYY-MM (UTC); this month without it",
                        "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                    }
                ],
                "responses": _responses("200", _USAGE),
            },
        },
        "/boards": {
            "get": {
                "summary": "The boards the caller sees: their own and the team's shared ones",
                "responses": _responses("200", {"type": "array", "items": _BOARD}),
            },
            "post": {
                "summary": "Make a board (private unless shared is true)",
                "requestBody": _json_body(_NEW_BOARD),
                "responses": _responses("201", _BOARD),
            },
        },
        "/boards/{board_id}": {
            "parameters": [_BOARD_ID],
            "get": {
                "summary": "A board with its generations (404 for a private board of another)",
                "responses": _responses("200", _BOARD_WITH_VIDEOS, "404"),
            },
            "delete": {
                "summary": "Delete a board (its owner or an admin); its videos stay",
                "responses": _no_content("deleted", "403", "404"),
            },
        },
        "/boards/{board_id}/items": {
            "parameters": [_BOARD_ID],
            "post": {
                "summary": "Put a generation on the board: 201 added, 200 already there",
                "requestBody": _json_body(_NEW_ITEM),
                "responses": {
                    **_responses("201", _BOARD, "404"),
                    "200": {
                        "description": "already on the board",
                        "content": {"application/json": {"schema": _BOARD}},
                    },
                },
            },
        },
        "/generations/{id}/share": {
            "parameters": [_ID],
            "post": {
                "summary": "A read-only public link to a finished video",
                "requestBody": _json_body(_SHARE_BODY),
                "responses": _responses("201", _SHARE_MADE, "403", "404", "409"),
            },
        },
        "/boards/{board_id}/share": {
            "parameters": [_BOARD_ID],
            "post": {
                "summary": "A read-only public link to a board the caller can see",
                "requestBody": _json_body(_SHARE_BODY),
                "responses": _responses("201", _SHARE_MADE, "403", "404"),
            },
        },
        "/shares": {
            "get": {
                "summary": "The caller's share links (everyone's for an admin), newest first",
                "responses": _responses(
                    "200",
                    {
                        "type": "object",
                        "required": ["shares"],
                        "properties": {"shares": {"type": "array", "items": _SHARE}},
                    },
                ),
            },
        },
        "/shares/{token}": {
            "parameters": [_TOKEN],
            "delete": {
                "summary": "Revoke a link (its maker, the board's owner or an admin): its page and"
                " videos answer 404",
                "responses": {
                    "204": {"description": "revoked (also when it already was)"},
                    **{
                        code: {
                            "description": "error",
                            "content": {"application/json": {"schema": _ERROR}},
                        }
                        for code in ("401", "403", "404")
                    },
                },
            },
        },
        "/boards/{board_id}/items/{generation_id}": {
            "parameters": [_BOARD_ID, _GENERATION_ID],
            "delete": {
                "summary": "Take a generation off the board (204 whether it was on it or not)",
                "responses": _no_content("removed", "404"),
            },
        },
        "/generations/{id}/extend": {
            "parameters": [_ID],
            "post": {
                "summary": "Extend a completed generation",
                "requestBody": _json_body(),
                "responses": _spending("201", _GENERATION, "404", "409"),
            },
        },
    },
}
