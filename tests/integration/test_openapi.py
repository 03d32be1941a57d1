"""The published contract: /api/openapi.json is generated from the models, matches the app's
routes, describes what the app really answers, and Swagger UI at /docs works offline.

Also the bad-input catalogue: each kind of bad request, its status, and the one error shape.
"""

from __future__ import annotations

import json
import re
import uuid

import jsonschema_rs
import pytest
import schemathesis
from pydantic import ValidationError

from app.api import schemas
from app.api.openapi import OPERATIONS, component_schemas
from tests.conftest import parse_widget_stream


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.is_json
    return response.get_json()


def conforms(document: dict, component: str, instance: object) -> list[str]:
    """Errors of `instance` against a schema of the *published* document (empty when it conforms),
    and against its model with no field left undeclared (the published schemas stay open, for
    fields added later: the service itself must send nothing they do not name)."""
    validator = jsonschema_rs.Draft202012Validator(
        {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    )
    errors = [error.message for error in validator.iter_errors(instance)]
    model = getattr(schemas, component)
    try:
        reply = model.model_validate(instance, extra="forbid")
    except ValidationError as exc:
        return errors + [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    # What the model would send is what was sent: no field dropped, none rewritten.
    if json.loads(json.dumps(schemas.wire(model, reply))) != instance:
        errors.append(f"{component} does not serialise back to the body sent")
    return errors


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema


def test_schemas_are_the_models_not_a_copy(document):
    published = document["components"]["schemas"]
    assert published == json.loads(json.dumps(component_schemas()))
    request = schemas.ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    assert published["ChatRequest"] == request
    props = published["ChatRequest"]["properties"]
    assert props["message"]["maxLength"] == schemas.MAX_MESSAGE_CHARS
    assert props["context"]["anyOf"][0]["maxLength"] == schemas.MAX_CONTEXT_CHARS
    assert (
        published["FeedbackRequest"]["properties"]["comment"]["anyOf"][0]["maxLength"]
        == schemas.MAX_COMMENT_CHARS
    )


def _flask_path(openapi_path: str) -> str:
    return re.sub(r"\{(\w+)\}", r"<\1>", openapi_path)


def test_every_api_route_is_documented_and_every_documented_route_exists(app, document):
    # The API is / and /api/*; /docs (this document's viewer), /static and /metrics are not.
    served = {
        (rule.rule, method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if rule.rule == "/" or rule.rule.startswith("/api/")
    }
    documented = {(_flask_path(path), method) for path, ops in document["paths"].items() for method in ops}
    assert served == documented
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert {op.endpoint for op in OPERATIONS} <= endpoints


def test_error_responses_reference_the_error_shape(document):
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if int(status) >= 400 and path != "/api/health":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (method, path, status)
            assert "429" in op["responses"], (method, path)


def test_stream_events_conform_to_the_published_event_schema(client, document):
    response = client.post("/api/chat", json={"message": "How do I water basil?"})
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    media = document["paths"]["/api/chat"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    assert media["schema"]["properties"]["data"]["contentSchema"]["$ref"].endswith("/ChatEvent")
    events = parse_widget_stream(response.get_data(as_text=True))
    assert {e["type"] for e in events} == {"metadata", "token", "done"}
    for event in events:
        assert conforms(document, "ChatEvent", event) == [], event
    assert events[-1]["cached"] is False
    again = parse_widget_stream(
        client.post("/api/chat", json={"message": "How do I water basil?"}).get_data(as_text=True)
    )
    assert again[-1]["type"] == "done" and again[-1]["cached"] is True  # the answer cache's replay
    for event in again:
        assert conforms(document, "ChatEvent", event) == [], event


def test_a_field_the_schema_does_not_name_is_refused():
    done = {
        "type": "done",
        "sources": [],
        "grounded": False,
        "conversation_id": str(uuid.uuid4()),
        "message_id": str(uuid.uuid4()),
        "cached": False,
        "answerer": "offline",
        "format": "text",
    }
    assert schemas.wire(schemas.ChatEvent, done) == done
    with pytest.raises(ValidationError, match="surprise"):
        schemas.wire(schemas.ChatEvent, {**done, "surprise": 1})
    with pytest.raises(ValidationError, match="cached"):
        schemas.wire(schemas.ChatEvent, {k: v for k, v in done.items() if k != "cached"})


def test_json_answer_conversation_health_and_root_conform(client, document):
    answer = client.post(
        "/api/chat", json={"message": "How do I water basil?"}, headers={"Accept": "application/json"}
    )
    assert conforms(document, "ChatAnswer", answer.get_json()) == []
    assert "error" not in answer.get_json()  # sent only when the answer was cut short
    conversation = client.get(f"/api/conversation/{answer.get_json()['conversation_id']}").get_json()
    assert conforms(document, "Conversation", conversation) == []
    assert [m["feedback"] for m in conversation["messages"]] == [None, None]
    vote = client.post("/api/feedback", json={"message_id": answer.get_json()["message_id"], "vote": "down"})
    assert vote.status_code == 201 and conforms(document, "FeedbackReceipt", vote.get_json()) == []
    voted = client.get(f"/api/conversation/{answer.get_json()['conversation_id']}").get_json()
    assert conforms(document, "Conversation", voted) == []
    assert voted["messages"][1]["feedback"] == {"vote": "down", "comment": None}
    assert conforms(document, "Health", client.get("/api/health").get_json()) == []
    assert conforms(document, "Liveness", client.get("/api/health/live").get_json()) == []
    assert conforms(document, "ServiceInfo", client.get("/").get_json()) == []


# --- the bad-input catalogue ---------------------------------------------------------------------

BIG = "y" * 70_000  # over Tuning.max_request_bytes (64 KiB)


def documented_operation(document: dict, path: str, method: str) -> dict | None:
    """The documented operation that serves `method path`, if any."""
    for template, operations in document["paths"].items():
        if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", template), path) and method in operations:
            return operations[method]
    return None


CATALOGUE = [
    # (id, method, path, request kwargs, status, error code, field named in details)
    (
        "invalid-json",
        "post",
        "/api/chat",
        {"data": '{"message": ', "content_type": "application/json"},
        400,
        "bad_request",
        None,
    ),
    (
        "wrong-content-type",
        "post",
        "/api/chat",
        {"data": "message=hi", "content_type": "text/plain"},
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "no-content-type",
        "post",
        "/api/chat",
        {"data": '{"message": "hi"}'},
        415,
        "unsupported_media_type",
        None,
    ),
    ("missing-field", "post", "/api/chat", {"json": {"mode": "general"}}, 422, "validation_error", "message"),
    ("too-long", "post", "/api/chat", {"json": {"message": "x" * 2001}}, 422, "validation_error", "message"),
    (
        "selection-without-context",
        "post",
        "/api/chat",
        {"json": {"message": "hi", "mode": "selection"}},
        422,
        "validation_error",
        "context",
    ),
    (
        "nul-character",
        "post",
        "/api/chat",
        {"json": {"message": "hi\u0000there"}},
        422,
        "validation_error",
        "message",
    ),
    ("not-an-object", "post", "/api/chat", {"json": ["hi"]}, 422, "validation_error", None),
    (
        "body-too-large",
        "post",
        "/api/chat",
        {"json": {"message": "x", "context": BIG}},
        413,
        "payload_too_large",
        None,
    ),
    (
        "feedback-invalid-json",
        "post",
        "/api/feedback",
        {"data": "{", "content_type": "application/json"},
        400,
        "bad_request",
        None,
    ),
    (
        "feedback-wrong-content-type",
        "post",
        "/api/feedback",
        {"data": "vote=up", "content_type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "feedback-bad-vote",
        "post",
        "/api/feedback",
        {"json": {"message_id": str(uuid.uuid4()), "vote": "meh"}},
        422,
        "validation_error",
        "vote",
    ),
    (
        "feedback-bad-id",
        "post",
        "/api/feedback",
        {"json": {"message_id": "42", "vote": "up"}},
        422,
        "validation_error",
        "message_id",
    ),
    (
        "feedback-long-comment",
        "post",
        "/api/feedback",
        {"json": {"message_id": str(uuid.uuid4()), "vote": "up", "comment": "c" * 1001}},
        422,
        "validation_error",
        "comment",
    ),
    (
        "feedback-too-large",
        "post",
        "/api/feedback",
        {"json": {"message_id": str(uuid.uuid4()), "vote": "up", "comment": BIG}},
        413,
        "payload_too_large",
        None,
    ),
    (
        "feedback-unknown-message",
        "post",
        "/api/feedback",
        {"json": {"message_id": str(uuid.uuid4()), "vote": "up"}},
        404,
        "not_found",
        None,
    ),
    ("unknown-conversation", "get", f"/api/conversation/{uuid.uuid4()}", {}, 404, "not_found", None),
    (
        "malformed-conversation-id",
        "get",
        "/api/conversation/not-a-uuid",
        {},
        422,
        "validation_error",
        "conversation_id",
    ),
    ("unknown-route", "get", "/api/nope", {}, 404, "not_found", None),
    ("unknown-route-post", "post", "/nope", {"json": {}}, 404, "not_found", None),
    ("wrong-method", "get", "/api/chat", {}, 405, "method_not_allowed", None),
    ("wrong-method-feedback", "delete", "/api/feedback", {}, 405, "method_not_allowed", None),
    ("wrong-method-health", "post", "/api/health", {"json": {}}, 405, "method_not_allowed", None),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code", "field"),
    [case[1:] for case in CATALOGUE],
    ids=[case[0] for case in CATALOGUE],
)
def test_bad_input_catalogue(client, document, method, path, kwargs, status, code, field):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert conforms(document, "ErrorBody", body) == []
    assert set(body) <= {"status", "error", "message", "details"}
    assert body["status"] == status and body["error"] == code
    text = response.get_data(as_text=True)
    assert "<html" not in text.lower() and "Traceback" not in text
    if field:
        assert field in [d["field"] for d in body["details"]]
    if status == 405:
        assert response.headers["Allow"]
    operation = documented_operation(document, path, method)
    if operation is not None:  # a documented operation documents its errors
        assert str(status) in operation["responses"]


# --- Swagger UI, offline ---------------------------------------------------------------------------

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.I)


def test_docs_page_loads_its_assets_from_this_service(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert not EXTERNAL.search(html), "the page must not load anything from another host"
    refs = re.findall(r"""(?:src|href)="([^"]+)\"""", html)
    assert refs and all(ref.startswith("/docs/static/") for ref in refs)
    assert 'data-spec-url="/api/openapi.json"' in html
    assert "<script>" not in html, "no inline script (the CSP forbids it)"
    types = {}
    for ref in refs:
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        types[ref.rsplit("/", 1)[-1]] = asset.mimetype
    assert types["swagger-ui-bundle.js"] == "text/javascript"
    assert types["init.js"] == "text/javascript"
    assert types["swagger-ui.css"] == "text/css"
    init = client.get("/docs/static/init.js").get_data(as_text=True)
    assert "validatorUrl: null" in init and not re.search(r"https?:|//\w", init)
    assert client.get("/docs/").status_code == 200


def test_swagger_ui_bundle_is_version_5_for_openapi_3_1(client):
    bundle = client.get("/docs/static/swagger-ui-bundle.js").get_data(as_text=True)
    assert "SwaggerUIBundle" in bundle
    assert "https://spec.openapis.org/oas/3.1/dialect/base" in bundle  # 3.1 support (Swagger UI 5)


def test_docs_serves_only_known_assets(client):
    assert client.get("/docs/static/swagger-ui.js.map").status_code == 404
    assert client.get("/docs/static/..%2f..%2fapp.py").status_code == 404
    assert client.get("/docs/static/index.html").status_code == 404
