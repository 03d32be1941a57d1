"""Turning a request body into a validated model, or a clear 4xx."""

from __future__ import annotations

from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from app.api.errors import ApiError

Model = TypeVar("Model", bound=BaseModel)


def parse_json_body(model: type[Model]) -> Model:
    """Validate the JSON body: 415 if not JSON, 400 if unparsable, 422 naming bad fields."""
    if not request.is_json:
        raise ApiError(415, "Send the body as JSON with Content-Type: application/json.")
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "The body is not valid JSON.")
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
