"""The migrations build exactly the schema the models describe (SQLite, or PostgreSQL when
TEST_DATABASE_URL is set): a model changed without its migration fails here, not in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext


def test_models_match_the_database_upgraded_to_head(make_settings):
    from app import create_app
    from app.database import upgrade_database
    from app.extensions import db

    app = create_app(make_settings())
    upgrade_database(app)
    with app.app_context():
        with db.engine.connect() as connection:
            # Alembic ignores its own alembic_version table; every other difference is a missing
            # or stale migration, listed as autogenerate would write it.
            migration_context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(migration_context, db.metadata)
        tables = set(db.metadata.tables)
        db.engine.dispose()
    assert {"conversations", "messages"} <= tables, "the models were not all imported"
    assert differences == []
