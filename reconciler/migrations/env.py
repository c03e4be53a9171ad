"""Alembic environment: the engine comes from the caller (``reconciler.migrate``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from reconciler.notify import tables as notify_tables
from reconciler.storage import create_db_engine, metadata
from reconciler.web import tables as web_tables

# every stage's tables must be on the metadata autogenerate compares against
TABLE_MODULES = (notify_tables, web_tables)
config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_db_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
