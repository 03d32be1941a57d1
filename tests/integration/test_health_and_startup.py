"""Readiness: `starting` until start-up work is done, `degraded` when a dependency is down."""

from app import create_app
from app.database import upgrade_database


def test_health_says_starting_until_start_up_is_done(make_settings, tuning):
    app = create_app(make_settings(), tuning)
    upgrade_database(app)
    client = app.test_client()
    response = client.get("/api/health")
    assert response.status_code == 503 and response.get_json()["status"] == "starting"
    assert client.get("/api/health/live").status_code == 200
    services = app.extensions["services"]
    services.startup.run()
    assert client.get("/api/health").status_code == 200


def test_start_up_indexes_the_book_once_and_then_writes_nothing(make_settings, tuning):
    app = create_app(make_settings(), tuning)
    upgrade_database(app)
    services = app.extensions["services"]
    services.startup.run()
    version = services.index.version()
    assert services.index.count() > 0
    summary = services.ingest_book()
    assert (summary.added, summary.updated, summary.removed, summary.version) == (0, 0, 0, None)
    assert services.index.version() == version


def test_database_down_makes_health_degraded_without_leaking_the_url(make_settings, tuning):
    app = create_app(
        make_settings(database_url="postgresql://user:hunter22@127.0.0.1:1/nodb", index_on_start=False),
        tuning,
    )
    app.extensions["services"].startup.run()
    response = app.test_client().get("/api/health")
    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "degraded"
    assert body["services"]["database"]["state"] == "down"
    assert "hunter22" not in response.get_data(as_text=True)


def test_missing_index_makes_health_degraded(make_settings, tuning):
    app = create_app(make_settings(index_on_start=False), tuning)
    upgrade_database(app)
    app.extensions["services"].startup.run()
    body = app.test_client().get("/api/health").get_json()
    assert body["status"] == "degraded" and body["services"]["index"]["state"] == "down"


def test_chat_without_an_index_is_a_clear_503(make_settings, tuning):
    app = create_app(make_settings(index_on_start=False), tuning)
    upgrade_database(app)
    response = app.test_client().post("/api/chat", json={"message": "hello"})
    assert response.status_code == 503
    assert response.get_json()["error"] == "index_not_ready"


def test_flask_shell_has_the_models_session_index_and_services(app):
    with app.app_context():
        context = app.make_shell_context()
    for name in (
        "db",
        "session",
        "Conversation",
        "Message",
        "index",
        "retriever",
        "answerer",
        "chat",
        "store",
        "services",
    ):
        assert name in context
