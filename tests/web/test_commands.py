"""`reconciler users add` (password from standard input) — invoked directly with CliRunner."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import create_engine, select

from reconciler.cli import main
from reconciler.web.commands import users_add
from reconciler.web.tables import users


def test_users_add_reads_the_password_from_stdin_and_hashes_it(env: dict[str, str]) -> None:
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    ok = CliRunner().invoke(users_add, ["olga", "--role", "officer"],
                            input="a long enough secret\n")
    assert ok.exit_code == 0, ok.output
    assert "olga added with role officer" in ok.output
    short = CliRunner().invoke(users_add, ["omar", "--role", "officer"], input="short\n")
    assert short.exit_code == 2 and "10 characters" in short.output
    again = CliRunner().invoke(users_add, ["olga", "--role", "admin"],
                               input="a long enough secret\n")
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    bad_role = CliRunner().invoke(users_add, ["x", "--role", "boss"], input="whatever12345\n")
    assert bad_role.exit_code == 2
    engine = create_engine(env["RECONCILER_DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(select(users.c.username, users.c.role, users.c.password_hash)).all()
    engine.dispose()
    assert [(r[0], r[1]) for r in rows] == [("olga", "officer")]
    assert rows[0][2].startswith("$argon2id$") and "a long enough secret" not in rows[0][2]
