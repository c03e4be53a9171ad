"""The migrations and the code's table definitions describe one schema.

The application writes through ``reconciler.storage.metadata`` (and the notifier's and the
desk's tables on it); a fresh database gets its schema from the Alembic migrations. If the
two drift, a deployment upgraded by migrations breaks where the tests' metadata works.
Compared with Alembic's own autogenerate comparison, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

import reconciler.notify.tables  # registers the notifier's tables
import reconciler.web.tables  # noqa: F401  (registers the desk's tables)
from reconciler.migrate import current_revision, head_revision
from reconciler.storage import metadata


def test_migrated_schema_matches_the_table_definitions(engine: Engine) -> None:
    assert current_revision(engine) == head_revision(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, metadata)
    # only differences that change behaviour count: tables, columns, indexes, constraints
    assert diff == [], "\n".join(map(str, diff))
