"""Request bodies, validated with pydantic (the same models document the API)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_MESSAGE_CHARS = 2000
MAX_CONTEXT_CHARS = 8000  # the widget trims the selection to this


class ChatRequest(BaseModel):
    """POST /api/chat, as the widget sends it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="The reader's question.")
    mode: Literal["general", "selection"] = Field(default="general")
    context: str | None = Field(
        default=None,
        max_length=MAX_CONTEXT_CHARS,
        description="The text the reader selected; required when mode is 'selection'.",
        validate_default=True,
    )
    conversation_id: uuid.UUID | None = Field(default=None, description="Continue this conversation.")

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain some text")
        return value

    @field_validator("context")
    @classmethod
    def _selection_needs_context(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("mode") == "selection" and not (value and value.strip()):
            raise ValueError("is required when mode is 'selection'")
        return value
