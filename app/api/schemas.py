"""Request bodies, validated with pydantic, and every JSON body and stream event the API sends.

The same models document the API (app/api/openapi.py) and serialise what it sends (`wire`), so
the published schema, the docs and the bytes on the wire cannot disagree.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    RootModel,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

MAX_MESSAGE_CHARS = 2000
MAX_CONTEXT_CHARS = 8000  # the widget trims the selection to this
MAX_COMMENT_CHARS = 1000
MAX_PAGE_CHARS = 2000

# The text rules the validators enforce, stated for clients and schema-driven tests. Python's
# whitespace (str.isspace) is spelled out so that ECMA-262 regexes (JSON Schema) agree exactly.
# NUL is refused everywhere: PostgreSQL cannot store it in text.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
SOME_TEXT_PATTERN = rf"^[^\x00]*[^{_SPACE}\x00][^\x00]*$"
NO_NUL_PATTERN = r"^[^\x00]*$"
# The page the reader is on: an absolute http(s) URL or a path (location.href without the hash).
PAGE_PATTERN = rf"^(https?://[^{_SPACE}#\x00]+|/[^{_SPACE}#\x00]*)$"


class ChatRequest(BaseModel):
    """POST /api/chat, as the widget sends it."""

    model_config = ConfigDict(
        extra="ignore",
        str_strip_whitespace=False,
        json_schema_extra={  # _selection_needs_context, for the published schema
            "if": {"properties": {"mode": {"const": "selection"}}, "required": ["mode"]},
            "then": {
                "required": ["context"],
                "properties": {"context": {"type": "string", "pattern": SOME_TEXT_PATTERN}},
            },
        },
    )

    message: str = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        description="The reader's question.",
        examples=["How do I deploy to Hugging Face Spaces?"],
        json_schema_extra={"pattern": SOME_TEXT_PATTERN},
    )
    mode: Literal["general", "selection"] = Field(default="general")
    context: str | None = Field(
        default=None,
        max_length=MAX_CONTEXT_CHARS,
        description="The text the reader selected; required when mode is 'selection'.",
        validate_default=True,
        json_schema_extra={"pattern": NO_NUL_PATTERN},
    )
    conversation_id: uuid.UUID | None = Field(default=None, description="Continue this conversation.")
    format: Literal["text", "markdown"] = Field(
        default="text",
        description=(
            "How the answer is written. 'text' (the default, what the book's widget gets): plain prose "
            "that reads well as one text node, no Markdown, each sentence ending with its [n]. "
            "'markdown': Markdown, for clients that render it."
        ),
    )
    page: str | None = Field(
        default=None,
        max_length=MAX_PAGE_CHARS,
        description=(
            "The page the reader is on: an absolute http(s) URL or a path starting with '/', without "
            "the hash. Retrieval prefers that page's sections when they answer the question; a page "
            "not in the book is ignored."
        ),
        examples=["https://book.example.org/module-01/chapter-01"],
        json_schema_extra={"pattern": PAGE_PATTERN},
    )

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain some text")
        return _no_nul(value)

    @field_validator("context")
    @classmethod
    def _selection_needs_context(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("mode") == "selection" and not (value and value.strip()):
            raise ValueError("is required when mode is 'selection'")
        return None if value is None else _no_nul(value)

    @field_validator("page")
    @classmethod
    def _a_page_address(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(PAGE_PATTERN, value):
            raise ValueError("must be an http(s) URL or a path starting with '/', without '#'")
        return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class FeedbackRequest(BaseModel):
    """POST /api/feedback: the reader's vote on an answer."""

    model_config = ConfigDict(extra="ignore")

    message_id: uuid.UUID = Field(description="The answer (an assistant message) being voted on.")
    vote: Literal["up", "down"]
    comment: str | None = Field(
        default=None,
        max_length=MAX_COMMENT_CHARS,
        description="Optional words about the answer. A new vote replaces the previous vote and comment.",
        examples=["Clear, and the link went to the right section."],
        json_schema_extra={"pattern": NO_NUL_PATTERN},
    )

    @field_validator("comment")
    @classmethod
    def _clean_comment(cls, value: str | None) -> str | None:
        return None if value is None else _no_nul(value)


# --- responses: the published contract of every JSON body (extra fields may be added later) ------


class _Reply(BaseModel):
    # Fields may be added to replies later (never removed): clients must ignore ones they do not
    # know, so the published schemas stay open. What the service sends is checked closed: `wire`.
    model_config = ConfigDict(extra="ignore")


Reply = TypeVar("Reply", bound=BaseModel)


def wire(model: type[Reply], data: Mapping[str, Any] | Reply) -> dict[str, Any]:
    """`data` as it goes on the wire, through `model`: a field the model does not declare is an
    error (the schema must name everything sent), and a field left unset is not sent (the
    optional ones, such as `error` or `details`, appear only when there is something to say)."""
    reply = data if isinstance(data, model) else model.model_validate(data, extra="forbid")
    return reply.model_dump(mode="json", by_alias=True, exclude_unset=True)


# Sent as Python's isoformat() ("+00:00"), as it always was; pydantic's own form would be "Z".
Timestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Source(_Reply):
    """A book section the answer was given, with a link to it."""

    file: str = Field(description="Path of the page in the docs folder.")
    heading: str = Field(description="Heading path of the section, joined with ' > '.")
    similarity: float = Field(description="0..1, comparable within one answer.")
    url: str = Field(description="Link to the section (BOOK_SITE_URL + route + #anchor).")
    title: str
    snippet: str = Field(description="The section's opening text, plain (up to about 600 characters).")


class AnswerError(_Reply):
    """Why an answer stopped early (the answer text says so too)."""

    code: str
    message: str


_ANSWERER = "Who wrote the answer: 'offline' is the extractive answerer (no key, or Gemini unavailable)."
_CACHED = (
    "True when the answer was replayed from the answer cache "
    "(the same question against the same index, recently)."
)


class ChatAnswer(_Reply):
    """POST /api/chat with Accept: application/json: the whole turn at once."""

    conversation_id: uuid.UUID
    message_id: uuid.UUID = Field(description="The answer's id, for POST /api/feedback.")
    answer: str
    sources: list[Source] = Field(description="The passages the answer cites, in the order of its [n].")
    grounded: bool = Field(description="True when the answer rests on book passages or the selection.")
    cached: bool = Field(description=_CACHED)
    answerer: Literal["gemini", "offline"] = Field(description=_ANSWERER)
    format: Literal["text", "markdown"]
    error: AnswerError | None = Field(default=None, description="Present only when the answer was cut short.")


class MetadataEvent(_Reply):
    """First event: which conversation and message this answer is."""

    type: Literal["metadata"]
    conversation_id: uuid.UUID
    message_id: uuid.UUID


class TokenEvent(_Reply):
    """A piece of the answer's text (plain text or Markdown, as requested, with [n] citations), in order."""

    type: Literal["token"]
    content: str


class ErrorEvent(_Reply):
    """The answer could not be finished; `done` follows."""

    type: Literal["error"]
    code: str
    message: str


class DoneEvent(_Reply):
    """Last event: the sources behind the [n] citations."""

    # In the order the event has always been sent.
    type: Literal["done"]
    sources: list[Source] = Field(description="Only the passages the text cites; the n-th is [n].")
    grounded: bool
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    cached: bool = Field(description=_CACHED)
    answerer: Literal["gemini", "offline"] = Field(description=_ANSWERER)
    format: Literal["text", "markdown"]


class ChatEvent(
    RootModel[Annotated[MetadataEvent | TokenEvent | ErrorEvent | DoneEvent, Field(discriminator="type")]]
):
    """One `data:` line of the answer stream: metadata → token… → (error) → done."""


class MessageFeedback(_Reply):
    """The reader's vote on an answer."""

    vote: Literal["up", "down"]
    comment: str | None = None


class ConversationMessage(_Reply):
    """One turn of a stored conversation."""

    id: uuid.UUID
    role: Literal["user", "assistant"]
    content: str
    sources: list[Source]
    created_at: Timestamp
    status: Literal["streaming", "complete", "interrupted", "failed"]
    mode: Literal["general", "selection"]
    feedback: MessageFeedback | None = Field(
        default=None, description="Assistant messages: the vote, or null."
    )


class Conversation(_Reply):
    """GET /api/conversation/<id>."""

    conversation_id: uuid.UUID
    messages: list[ConversationMessage] = Field(description="Oldest first.")


class FeedbackReceipt(_Reply):
    """The vote as stored (201 the first time, 200 when changed)."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    vote: Literal["up", "down"]
    comment: str | None
    created_at: Timestamp
    updated_at: Timestamp


class ServiceState(_Reply):
    """One dependency's state; which other fields appear depends on the dependency."""

    # In the order each check has always sent them (a check sends some of them, in this order).
    state: str = Field(description="up, down, or for startup: starting, ready, failed.")
    error: str | None = Field(
        default=None, description="Why it is down: `timeout`, an errno name or an exception class."
    )
    mode: str | None = Field(default=None, description="answerer: `gemini`, or the offline answerer's name.")
    model: str | None = Field(default=None, description="answerer: the Gemini model.")
    circuit: str | None = Field(
        default=None, description="answerer: the circuit breaker's state (open: down)."
    )
    consecutive_failures: int | None = Field(
        default=None, description="answerer: Gemini calls failed in a row."
    )
    backend: str | None = Field(default=None, description="database: sqlite or postgresql.")
    migrations: str | None = Field(
        default=None, alias="schema", description="database: `migrations pending` when the schema is behind."
    )
    points: int | None = Field(default=None, description="index: how many passages it holds.")
    version: str | None = Field(default=None, description="index: the version of the book indexed.")
    engine: str | None = Field(default=None, description="index: `embedded` or `qdrant`.")
    latency_ms: float | None = Field(default=None, description="How long the check took.")


class Health(_Reply):
    """GET /api/health."""

    status: Literal["starting", "healthy", "degraded", "unhealthy"]
    services: dict[str, ServiceState]
    timestamp: Timestamp


class Liveness(_Reply):
    """GET /api/health/live."""

    status: Literal["alive"]


class ServiceInfo(_Reply):
    """GET /: what this service is and where its API is described."""

    service: str
    description: str
    version: str
    docs: str
    endpoints: dict[str, str]


class ErrorDetail(_Reply):
    """One invalid field."""

    field: str
    problem: str


class ErrorBody(_Reply):
    """Every error, on every route: never HTML, never a stack trace."""

    status: int = Field(description="The HTTP status, repeated.")
    error: str = Field(description="Stable machine-readable code; branch on this.")
    message: str = Field(description="A sentence safe to show to a person.")
    details: list[ErrorDetail] | None = Field(
        default=None, description="Validation errors: one per bad field."
    )
