"""The OpenAPI 3.0 description of /api/v1, served at /api/v1/openapi.json.

Written by hand: the API is four operations, and this keeps it next to the code it describes.
tests/test_fuzz.py drives schemathesis with it, so a drift between the two shows up as failures.
"""

from __future__ import annotations

from generations.forms import MAX_PROMPT, MAX_URL
from generations.models import ASPECT_RATIOS, Status

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
                "local": {"type": "boolean"},
            },
        },
    },
}
_BODY = {
    "type": "object",
    "required": ["user_prompt"],
    "properties": {
        "user_prompt": {"type": "string", "minLength": 1, "maxLength": MAX_PROMPT},
        "aspect_ratio": {"type": "string", "enum": ASPECT_RATIOS},
        "expand_prompt": {"type": "boolean"},
        "image_url": {"type": "string", "format": "uri", "maxLength": MAX_URL},
        "image_end_url": {"type": "string", "format": "uri", "maxLength": MAX_URL},
    },
}


def _responses(ok: str, schema: dict, *codes: str) -> dict:
    out = {ok: {"description": "OK", "content": {"application/json": {"schema": schema}}}}
    for code in ("400", "401", *codes):
        out[code] = {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
    return out


def _json_body() -> dict:
    return {"required": True, "content": {"application/json": {"schema": _BODY}}}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}

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
                "summary": "Queue a new generation",
                "requestBody": _json_body(),
                "responses": _responses("201", _GENERATION),
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
        "/generations/{id}/extend": {
            "parameters": [_ID],
            "post": {
                "summary": "Extend a completed generation",
                "requestBody": _json_body(),
                "responses": _responses("201", _GENERATION, "404", "409"),
            },
        },
    },
}
