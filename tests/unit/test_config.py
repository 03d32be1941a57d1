"""Settings: defaults that serve the embedded mode, and one clear line per malformed value."""

from pathlib import Path

import pytest

from app.config import ConfigError, load_settings


def settings(**values):
    return load_settings(_env_file=None, **values)


def test_defaults_serve_the_embedded_mode():
    s = settings()
    assert s.sqlalchemy_url.startswith("sqlite:///") and s.sqlalchemy_url.endswith("instance/chat.db")
    assert s.embedded_index and not s.gemini_enabled
    assert s.index_path == s.instance_path / "qdrant"
    assert s.qdrant_collection == "docusaurus-book"
    assert s.port == 7860 and s.log_level == "INFO"


@pytest.mark.parametrize(
    "url",
    [
        "postgres://alice:s3cret@ep-cool-1.eu-central-1.aws.neon.tech/neondb?sslmode=require",
        "postgresql://alice:s3cret@ep-cool-1.eu-central-1.aws.neon.tech/neondb?sslmode=require&channel_binding=require",
    ],
)
def test_neon_urls_work_as_given(url):
    s = settings(database_url=url)
    assert s.sqlalchemy_url.startswith("postgresql+psycopg2://alice:s3cret@ep-cool-1")
    assert "sslmode=require" in s.sqlalchemy_url
    assert "s3cret" not in s.database_label and "s3cret" not in repr(s)


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"database_url": "not a url"}, "DATABASE_URL"),
        ({"database_url": "mysql://u:p@h/db"}, "DATABASE_URL"),
        ({"database_url": "postgresql://user:hunter22@/db"}, "DATABASE_URL"),
        ({"allowed_origins": "https://ok.example.com,ftp://bad"}, "ALLOWED_ORIGINS"),
        ({"allowed_origins": "https://book.example.com/docs"}, "ALLOWED_ORIGINS"),
        ({"log_level": "LOUD"}, "LOG_LEVEL"),
        ({"port": "http"}, "PORT"),
        ({"qdrant_url": "localhost:6333"}, "QDRANT_URL"),
    ],
)
def test_malformed_values_name_the_variable_without_the_value(values, variable):
    with pytest.raises(ConfigError) as info:
        settings(**values)
    message = str(info.value)
    assert message.startswith(f"{variable}:")
    assert "\n" not in message
    assert "hunter22" not in message


def test_origins_are_read_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://book.vercel.app, https://me-chat.hf.space")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    s = settings()
    assert s.allowed_origins == ["https://book.vercel.app", "https://me-chat.hf.space"]
    assert s.log_level == "DEBUG"


def test_secrets_are_hidden_in_repr():
    s = settings(gemini_api_key="AIzaSy-very-secret", qdrant_api_key="qdrant-secret-key")
    text = repr(s) + str(s)
    assert "very-secret" not in text and "qdrant-secret-key" not in text
    assert s.gemini_enabled


def test_instance_path_moves_every_default_file(tmp_path: Path):
    s = settings(instance_path=tmp_path)
    assert s.sqlalchemy_url == f"sqlite:///{tmp_path / 'chat.db'}"
    assert s.index_path == tmp_path / "qdrant"


def test_retention_is_forever_unless_set(monkeypatch):
    assert settings().retention_days is None
    monkeypatch.setenv("RETENTION_DAYS", "")
    assert settings().retention_days is None
    monkeypatch.setenv("RETENTION_DAYS", "90")
    assert settings().retention_days == 90
    monkeypatch.setenv("RETENTION_DAYS", "0")
    with pytest.raises(ConfigError, match="^RETENTION_DAYS: "):
        settings()


def test_there_are_at_most_thirty_settings():
    # Issue 13: every knob an operator must understand costs; tuning values are constants in code.
    from app.config import Settings

    assert len(Settings.model_fields) <= 30, sorted(Settings.model_fields)


def test_a_removed_tuning_variable_is_ignored_not_an_error(monkeypatch):
    # An old .env or Space secret with a variable that became a constant must not stop start-up.
    monkeypatch.setenv("HEALTH_CACHE_SECONDS", "not a number")
    monkeypatch.setenv("GEMINI_MAX_ATTEMPTS", "0")
    assert settings().port == 7860
