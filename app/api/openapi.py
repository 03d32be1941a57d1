"""GET /api/openapi.json: the API's OpenAPI 3.1 document, generated from the pydantic models that
validate requests and describe responses (app/api/schemas.py). Nothing here is a copy of a field
list: the table below names routes, statuses and models; the models supply every schema.

A test checks the table against the app's URL map, so a route cannot be added or removed without
the document following.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.api import schemas
from app.version import __version__

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{model}"

# Why each error status can happen, for the descriptions.
_ERROR_TEXT = {
    400: "The body is not valid JSON.",
    404: "Not found.",
    405: "Wrong method; the Allow header lists the right ones.",
    413: "The body is larger than the service accepts (see the request body).",
    415: "The body was not sent as Content-Type: application/json.",
    422: "A field breaks a rule; `details` names each one.",
    429: "Too many requests from this client (rate limit, or too many answers in progress). "
    "Wait for Retry-After seconds.",
    503: "A dependency is unavailable; retry later.",
}
_HEADERS = {
    405: {"Allow": {"description": "The methods this path accepts.", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "string"}}
    },
    503: {"Retry-After": {"description": "Seconds to wait, when known.", "schema": {"type": "string"}}},
}


@dataclass(frozen=True)
class Operation:
    """One documented route: its method, path, Flask endpoint, body model and answers."""

    method: str
    path: str  # OpenAPI template: /api/conversation/{conversation_id}
    endpoint: str  # the Flask endpoint that serves it
    summary: str
    tag: str
    responses: dict[int, tuple[str, dict[str, Any]]]  # status → (description, content)
    body: type[BaseModel] | None = None
    description: str = ""
    parameters: list[dict[str, Any]] = field(default_factory=list)
    errors: tuple[int, ...] = ()
    links: dict[int, dict[str, Any]] = field(default_factory=dict)  # status → OpenAPI links


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}


def _event_stream(model: type[BaseModel]) -> dict[str, Any]:
    # OpenAPI 3.1 describes a text/event-stream by the schema of one event (OpenAPI 3.2 names it
    # `itemSchema`): each event's `data` is one line of JSON matching `model`.
    return {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "description": (
                    "One Server-Sent Event: `data: <JSON>` then a blank line; "
                    f"the JSON is a {model.__name__}."
                ),
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {"$ref": _REF.format(model=model.__name__)},
                    },
                    "event": {"type": "string", "const": "message"},
                },
            }
        }
    }


_BODY_ERRORS = (400, 413, 415, 422)

# Where the ids in a JSON answer lead (the stream's `metadata` event carries the same ids).
_CONVERSATION_LINK = {
    "operationId": "conversations_get_conversation",
    "parameters": {"conversation_id": "$response.body#/conversation_id"},
    "description": "The stored conversation.",
}
_VOTE_LINK = {
    "operationId": "feedback_feedback",
    "requestBody": {"message_id": "$response.body#/message_id", "vote": "up"},
    "description": "Vote on this answer.",
}

OPERATIONS: list[Operation] = [
    Operation(
        "post",
        "/api/chat",
        "chat.chat",
        "Ask the book a question",
        "chat",
        body=schemas.ChatRequest,
        description=(
            "Stores the question, finds the sections that answer it and streams the answer as "
            "Server-Sent Events: `metadata` → `token`… → (`error`) → `done` with the sources. "
            "With `Accept: application/json` the whole turn comes back as one object instead. "
            "Errors before the first event (unknown conversation, rate limits, index not ready) "
            "are ordinary JSON error responses."
        ),
        responses={
            200: (
                "The answer, streamed (default) or whole.",
                {**_event_stream(schemas.ChatEvent), **_json(schemas.ChatAnswer)},
            ),
            404: ("No conversation with this `conversation_id`.", _json(schemas.ErrorBody)),
            503: (
                "The index is not built yet, the database or the model is unavailable.",
                _json(schemas.ErrorBody),
            ),
        },
        errors=(*_BODY_ERRORS, 429),
        links={200: {"GetConversation": _CONVERSATION_LINK, "VoteOnAnswer": _VOTE_LINK}},
    ),
    Operation(
        "get",
        "/api/conversation/{conversation_id}",
        "conversations.get_conversation",
        "A conversation's messages, oldest first",
        "conversations",
        parameters=[
            {
                "name": "conversation_id",
                "in": "path",
                "required": True,
                "description": "The id from the chat's `metadata` event.",
                "schema": {"type": "string", "format": "uuid"},
            }
        ],
        responses={
            200: ("The conversation, with each answer's feedback.", _json(schemas.Conversation)),
            404: ("No conversation with this id.", _json(schemas.ErrorBody)),
            422: ("The id is not a UUID.", _json(schemas.ErrorBody)),
        },
        errors=(429,),
    ),
    Operation(
        "post",
        "/api/feedback",
        "feedback.feedback",
        "Vote on an answer",
        "feedback",
        body=schemas.FeedbackRequest,
        description=(
            "One vote per answer (an assistant message); voting again replaces the vote and the "
            "comment. The reader's own messages cannot be voted on (422). The vote appears in "
            "`GET /api/conversation/{id}` as the message's `feedback`."
        ),
        responses={
            200: ("The vote replaced an earlier one.", _json(schemas.FeedbackReceipt)),
            201: ("The first vote on this answer.", _json(schemas.FeedbackReceipt)),
            404: ("No message with this id.", _json(schemas.ErrorBody)),
            503: ("The database is unavailable.", _json(schemas.ErrorBody)),
        },
        errors=(*_BODY_ERRORS, 429),
        links={200: {"GetConversation": _CONVERSATION_LINK}, 201: {"GetConversation": _CONVERSATION_LINK}},
    ),
    Operation(
        "get",
        "/api/health",
        "health.health",
        "Readiness, with each dependency's state",
        "health",
        responses={
            200: ("healthy", _json(schemas.Health)),
            503: ("starting, degraded or unhealthy", _json(schemas.Health)),
        },
        errors=(429,),
    ),
    Operation(
        "get",
        "/api/health/live",
        "health.live",
        "Liveness: 200 while the process serves",
        "health",
        responses={200: ("alive", _json(schemas.Liveness))},
        errors=(429,),
    ),
    Operation(
        "get",
        "/",
        "root.index",
        "The service's name, version and entry points",
        "service",
        description="JSON for API clients; a browser that asks for HTML first gets a small chat page.",
        responses={
            200: (
                "What this service is (JSON), or the chat page (HTML).",
                {**_json(schemas.ServiceInfo), "text/html": {"schema": {"type": "string"}}},
            )
        },
        errors=(429,),
    ),
    Operation(
        "get",
        "/api/openapi.json",
        "openapi.document",
        "This document",
        "service",
        responses={200: ("The OpenAPI 3.1 document.", {"application/json": {"schema": {"type": "object"}}})},
        errors=(429,),
    ),
]

# Models that appear in the document, with the side they describe (requests are validated,
# responses serialised: pydantic can give the two slightly different schemas).
_REQUEST_MODELS: list[type[BaseModel]] = [schemas.ChatRequest, schemas.FeedbackRequest]
_RESPONSE_MODELS: list[type[BaseModel]] = [
    schemas.ChatAnswer,
    schemas.ChatEvent,
    schemas.Conversation,
    schemas.FeedbackReceipt,
    schemas.Health,
    schemas.Liveness,
    schemas.ServiceInfo,
    schemas.ErrorBody,
]


def component_schemas() -> dict[str, Any]:
    """Every model's JSON Schema, keyed by model name, references pointing between them."""
    _, top = models_json_schema(
        [(model, "validation") for model in _REQUEST_MODELS]
        + [(model, "serialization") for model in _RESPONSE_MODELS],
        ref_template=_REF,
    )
    return dict(sorted(top.get("$defs", {}).items()))


def build_document(*, version: str, max_request_bytes: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this service."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        operation: dict[str, Any] = {
            "operationId": op.endpoint.replace(".", "_"),
            "summary": op.summary,
            "tags": [op.tag],
        }
        if op.description:
            operation["description"] = op.description
        if op.parameters:
            operation["parameters"] = op.parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "description": f"JSON, at most {max_request_bytes} bytes.",
                "content": _json(op.body),
            }
        responses: dict[str, Any] = {}
        for status, (text, content) in sorted(op.responses.items()):
            responses[str(status)] = {"description": text, "content": content}
            if status in _HEADERS:
                responses[str(status)]["headers"] = _HEADERS[status]
            if status in op.links:
                responses[str(status)]["links"] = op.links[status]
        for status in sorted(set(op.errors) - set(op.responses)):
            responses[str(status)] = {"description": _ERROR_TEXT[status], "content": _json(schemas.ErrorBody)}
            if status in _HEADERS:
                responses[str(status)]["headers"] = _HEADERS[status]
        operation["responses"] = dict(sorted(responses.items()))
        paths.setdefault(op.path, {})[op.method] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Docusaurus book chat",
            "version": version,
            "summary": "Ask a Docusaurus book questions; answers cite its sections.",
            "description": (
                "The backend of the book's chat widget. Every error has one JSON shape "
                "(`ErrorBody`). Unknown paths get 404 and wrong methods 405, both as `ErrorBody`. "
                "Requests are rate-limited per client IP; past a limit the answer is 429 with "
                "`Retry-After`."
            ),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "tags": [
            {"name": "chat", "description": "Questions and streamed answers."},
            {"name": "conversations", "description": "Stored conversations."},
            {"name": "feedback", "description": "Readers' votes on answers."},
            {"name": "health", "description": "Probes for the platform."},
            {"name": "service", "description": "About this service."},
        ],
        "paths": paths,
        "components": {"schemas": component_schemas()},
    }


def document_for(app: Flask) -> dict[str, Any]:
    """The app's document, built once."""
    cached = app.extensions.get("openapi_document")
    if cached is None:
        cached = build_document(
            version=__version__, max_request_bytes=int(app.config.get("MAX_CONTENT_LENGTH") or 0)
        )
        app.extensions["openapi_document"] = cached
    return cached


@bp.get("/api/openapi.json")
def document() -> ResponseReturnValue:
    """The OpenAPI document (JSON)."""
    response = jsonify(document_for(current_app._get_current_object()))  # type: ignore[attr-defined]  # a LocalProxy, typed by Flask as the app
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
