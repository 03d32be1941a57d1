"""Turning a request body into a validated model, or a clear 4xx."""

from __future__ import annotations

import json
from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from app.api.errors import ApiError

Model = TypeVar("Model", bound=BaseModel)


def parse_json_body(model: type[Model]) -> Model:
    """Validate the JSON body: 415 if not JSON, 413 if too large, 400 if unparsable (or nested too
    deeply to parse), 422 if not an object or naming bad fields."""
    if not request.is_json:
        raise ApiError(415, "Send the body as JSON with Content-Type: application/json.")
    raw = request.get_data(cache=True)  # 413 when a Content-Length is over MAX_CONTENT_LENGTH
    if _stream_goes_on(raw):
        raise RequestEntityTooLarge()
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "The body is not valid JSON: nested too deeply.") from None
    except ValueError:  # not JSON, or not UTF-8
        raise ApiError(400, "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(422, "The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [
            {
                "field": ".".join(str(part) for part in error["loc"]) or "body",
                "problem": error["msg"].removeprefix("Value error, "),
            }
            for error in exc.errors(include_input=False, include_url=False)
        ]
        fields = ", ".join(d["field"] for d in details)
        raise ApiError(422, f"Invalid request: {fields}.", details=details) from None


def _stream_goes_on(raw: bytes) -> bool:
    """True when a body without Content-Length (chunked) is longer than MAX_CONTENT_LENGTH.

    werkzeug stops such a stream at the limit without saying so: the JSON would look truncated
    (a 400) instead of too large (413, as with a Content-Length)."""
    limit = request.max_content_length
    if request.content_length is not None or limit is None or len(raw) < limit:
        return False
    return bool(request.environ["wsgi.input"].read(1))
