"""``reconciler serve`` and ``reconciler users add`` (registered in ``reconciler.cli``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from reconciler.config import load_settings
from reconciler.errors import FatalError
from reconciler.web.security import ROLES, UserExists, add_user
from reconciler.web.settings import load_web_settings


def _reconciler(ctx: click.Context) -> Any:
    from reconciler.pipeline import Reconciler

    obj = ctx.find_root().obj if isinstance(ctx.find_root().obj, dict) else {}
    settings = obj.get("settings") or load_settings(
        Path(obj["config"]) if obj.get("config") else None)
    return Reconciler.from_settings(settings)


@click.command()
@click.option("--host", default=None, help="default RECONCILER_HTTP_HOST or 127.0.0.1")
@click.option("--port", type=int, default=None, help="default RECONCILER_HTTP_PORT or 8080")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the compliance officer's desk (pages and /api/v1) without the daemon."""
    import uvicorn

    from reconciler.web.app import create_app

    reconciler = _reconciler(ctx)
    web = load_web_settings(sla_days=reconciler.catalogue.sla_days())
    app = create_app(web, reconciler)
    uvicorn.run(app, host=host or web.host, port=port if port is not None else web.port,
                log_level="info", proxy_headers=False)


@click.group()
def users() -> None:
    """Desk accounts."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str) -> None:
    """Add a user; the password is read from standard input (one line)."""
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 10:
        raise click.UsageError("the password (read from standard input) needs 10 characters "
                               "or more")
    app = _reconciler(ctx)
    try:
        with app.engine.begin() as conn:
            user = add_user(conn, name, role, password)
    except UserExists as exc:
        raise FatalError(str(exc)) from None
    finally:
        app.engine.dispose()
    click.echo(f"user {user.username} added with role {user.role}")
