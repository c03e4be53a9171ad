"""The ``reconciler`` command."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from reconciler.config import Settings, load_settings
from reconciler.errors import ConfigError, FatalError, ReconcilerError
from reconciler.logs import configure_logging


def _settings(ctx: click.Context) -> Settings:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "settings" not in obj:
        path = obj.get("config")
        obj["settings"] = load_settings(Path(path) if path else None)
        configure_logging(obj["settings"].log_level)
    settings: Settings = obj["settings"]
    return settings


def _app(ctx: click.Context) -> Any:
    from reconciler.pipeline import Reconciler

    return Reconciler.from_settings(_settings(ctx))


class _Group(click.Group):
    """Errors of ours become one clear line and exit 2 (config) or 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)
        except ReconcilerError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.option("--config", "config", type=click.Path(dir_okay=False),
              envvar="RECONCILER_CONFIG", help="YAML settings (default: config/reconciler.yaml)")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """Proactive registration reconciliation: partner feeds in, findings and events out."""
    ctx.ensure_object(dict)["config"] = config


@main.command()
@click.option("--once", is_flag=True, help="pull every connector once, reconcile, act, exit")
@click.pass_context
def run(ctx: click.Context, once: bool) -> None:
    """Run the daemon (or one pass with --once)."""
    from reconciler.pipeline import Progress

    if once:
        app = _app(ctx)
        report = app.run_once(Progress())
        click.echo(json.dumps({"as_of": report.as_of.isoformat(), "ingest": report.ingest,
                               "identity": report.identity, "findings": report.findings,
                               "notifications": report.notifications,
                               "outbox": report.outbox, "timings": report.timings,
                               "peak_mib": report.peak_mib},
                              indent=2))
        return
    from reconciler.daemon import run_daemon

    # the daemon builds its app without connecting: it waits for an absent database
    sys.exit(run_daemon(_settings(ctx)))


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="one JSON object instead of the table")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Each connector's cursor, last pull, next run and backlog; the scheduler lease; the
    last reconcile; the outbox backlog; quarantined rows. Reads the database only."""
    from sqlalchemy.exc import SQLAlchemyError

    from reconciler.status import collect_status, format_status
    from reconciler.storage import create_db_engine

    settings = _settings(ctx)
    engine = create_db_engine(settings.database_url)
    try:
        status = collect_status(engine, settings)
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise FatalError(f"cannot read the database at "
                         f"{engine.url.render_as_string(hide_password=True)}: {cause} "
                         "(is it up, and at the current schema? `reconciler db upgrade`)"
                         ) from exc
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(status.as_dict(), ensure_ascii=False, indent=2))
        return
    click.echo(format_status(status))


@main.group()
def findings() -> None:
    """Findings: export."""


@findings.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="-")
@click.option("--status", default=None, help="only findings in this status")
@click.option("--rule", default=None, help="only findings of this sign")
@click.pass_context
def export_findings(ctx: click.Context, fmt: str, output: str, status: str | None,
                    rule: str | None) -> None:
    """Write the findings (contract: one JSON object a line, or CSV)."""
    from reconciler.export import iter_findings, write_csv, write_jsonl

    app = _app(ctx)
    writer = write_jsonl if fmt == "jsonl" else write_csv
    with app.engine.connect() as conn, click.open_file(output, "w", encoding="utf-8") as out:
        count = writer(iter_findings(conn, status, rule), out)
    if output != "-":
        click.echo(f"{count} findings written to {output}", err=True)


@main.command()
@click.option("--workers", default=2000, show_default=True, help="size of the generated world")
@click.option("--seed", default=7, show_default=True)
@click.option("--once", is_flag=True, help="run one pass and exit instead of the daemon")
@click.option("--force", is_flag=True, help="replace an existing inbox")
@click.pass_context
def demo(ctx: click.Context, workers: int, seed: int, once: bool, force: bool) -> None:
    """Generate a demo world into the inbox, then run the daemon on it."""
    from reconciler.synth.world import WorldSpec, generate_world, write_world

    settings = _settings(ctx)
    inbox = settings.inbox
    truth = inbox.parent / "truth"
    if inbox.exists() and any(inbox.iterdir()):
        if not force:
            click.echo(f"{inbox} is not empty: using it as it is (--force to regenerate)",
                       err=True)
        else:
            shutil.rmtree(inbox)
    if not inbox.exists() or not any(inbox.iterdir()):
        as_of = settings.today()
        world = generate_world(WorldSpec(workers=workers, seed=seed, as_of=as_of))
        write_world(world, inbox, truth)
        click.echo(f"generated {workers} workers into {inbox} (truth in {truth})", err=True)
    ctx.invoke(run, once=once)
    if once:
        click.echo(f"score it: reconciler evaluate --truth {truth}", err=True)


@main.command()
@click.option("--truth", type=click.Path(file_okay=False, exists=True), required=True,
              help="the ground-truth folder a generated world was written with")
@click.option("--findings", "findings_file", type=click.Path(dir_okay=False, exists=True),
              help="a findings export (default: the findings in the database)")
@click.pass_context
def evaluate(ctx: click.Context, truth: str, findings_file: str | None) -> None:
    """Per-sign precision, recall and F1 of the findings against a world's ground truth."""
    from reconciler.evaluate import evaluate as score

    def rows() -> Iterator[dict[str, Any]]:
        if findings_file:
            with open(findings_file, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
            return
        from reconciler.export import iter_findings

        with _app(ctx).engine.connect() as conn:
            yield from iter_findings(conn)

    result = score(list(rows()), Path(truth))
    click.echo(result.format_table())


@main.command()
@click.option("--workers", default=1000, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--as-of", "as_of", default=None, help="YYYY-MM-DD (default: today)")
@click.option("--inbox", type=click.Path(file_okay=False), required=True)
@click.option("--truth", type=click.Path(file_okay=False), required=True)
def generate(workers: int, seed: int, as_of: str | None, inbox: str, truth: str) -> None:
    """Write a synthetic world (feeds and ground truth) without running anything."""
    from reconciler.synth.world import WorldSpec, generate_world, write_world

    day = date.fromisoformat(as_of) if as_of else datetime.now(UTC).date()
    summary = write_world(generate_world(WorldSpec(workers=workers, seed=seed, as_of=day)),
                          Path(inbox), Path(truth))
    click.echo(json.dumps(summary, default=str, indent=2) if isinstance(summary, dict)
               else str(summary))


@main.group()
def config() -> None:
    """Configuration."""


@config.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate the settings and the rule catalogue without running anything."""
    from reconciler.rules.catalogue import load_catalogue

    settings = _settings(ctx)
    catalogue = load_catalogue(settings.rules_path)
    click.echo(f"configuration valid: {len(settings.connectors)} connectors, "
               f"{len(catalogue.signs)} signs, database {settings.database_url.split(':')[0]}")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the Alembic migrations up to the newest."""
    from reconciler.migrate import current_revision, upgrade
    from reconciler.storage import create_db_engine

    engine = create_db_engine(_settings(ctx).database_url)
    upgrade(engine)
    click.echo(f"schema at revision {current_revision(engine)}")


@main.group()
def quarantine() -> None:
    """Rows rejected at ingest."""


@quarantine.command("list")
@click.option("--feed", default=None)
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def quarantine_list(ctx: click.Context, feed: str | None, limit: int, as_json: bool) -> None:
    """Show quarantined rows: where they came from and why they were rejected."""
    from sqlalchemy import func

    from reconciler.storage import quarantine as table

    app = _app(ctx)
    with app.engine.connect() as conn:
        where = [table.c.feed == feed] if feed else []
        total = conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
        rows = conn.execute(select(table).where(*where).order_by(table.c.id).limit(limit)
                            ).mappings().all()
    if as_json:
        for r in rows:
            click.echo(json.dumps({k: r[k] for k in ("feed", "source", "line_no", "field",
                                                     "reason")}, ensure_ascii=False))
        return
    click.echo(f"{total} quarantined rows" + (f" (showing {len(rows)})" if total > limit else ""))
    for r in rows:
        click.echo(f"{r['feed']:<13} {Path(r['source']).name}:{r['line_no']:<6} {r['reason']}")


@main.group()
def outbox() -> None:
    """The transactional outbox and its relay to Kafka."""


@outbox.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def outbox_status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Backlog (pending events) and the age of the oldest pending one."""
    from reconciler.bus.relay import outbox_status

    app = _app(ctx)
    with app.engine.connect() as conn:
        status = outbox_status(conn)
    if as_json:
        click.echo(json.dumps(status.as_dict()))
        return
    age = status.oldest_pending_age_seconds
    click.echo(f"pending: {status.pending}")
    click.echo(f"published: {status.published}")
    click.echo("oldest pending: " + ("-" if age is None else
                                     f"{status.oldest_pending_at:%Y-%m-%dT%H:%M:%SZ} "
                                     f"({_age(age)} ago)"))
    click.echo(f"most attempts of a pending event: {status.max_attempts}")
    click.echo("relay: " + ("to " + app.settings.kafka_bootstrap
                            if app.settings.kafka_bootstrap
                            else "off (RECONCILER_KAFKA_BOOTSTRAP unset)"))


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


@outbox.command("relay")
@click.pass_context
def outbox_relay_cmd(ctx: click.Context) -> None:
    """Publish every pending event now; exit 1 if the broker could not take them all."""
    app = _app(ctx)
    if not app.settings.kafka_bootstrap:
        raise FatalError("RECONCILER_KAFKA_BOOTSTRAP is not set: there is no broker to relay to")
    result = app.flush_outbox()
    click.echo(json.dumps(result))
    if "error" in result:
        sys.exit(1)


@main.group()
def notifications() -> None:
    """Employer notifications: digests, their delivery state, dead letters."""


@notifications.command("list")
@click.option("--status", type=click.Choice(["pending", "sent", "dead"]), default=None)
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def notifications_list(ctx: click.Context, status: str | None, limit: int,
                       as_json: bool) -> None:
    """Each digest delivery: employer, channel, state, attempts, last error."""
    from reconciler.notify import notification_counts
    from reconciler.notify.tables import notifications as table

    app = _app(ctx)
    with app.engine.connect() as conn:
        where = [table.c.status == status] if status else []
        rows = conn.execute(select(table).where(*where)
                            .order_by(table.c.created_at, table.c.notification_id)
                            .limit(limit)).mappings().all()
        counts = notification_counts(conn)
    shown = ("notification_id", "digest_id", "employer_id", "channel", "recipient",
             "language", "status", "attempts", "last_error")
    if as_json:
        for r in rows:
            out = {k: r[k] for k in shown}
            out["sent_at"] = r["sent_at"].isoformat() if r["sent_at"] else None
            click.echo(json.dumps(out, ensure_ascii=False))
        return
    totals = {s: sum(n for (_, st), n in counts.items() if st == s)
              for s in ("pending", "sent", "dead")}
    click.echo(", ".join(f"{n} {s}" for s, n in totals.items())
               + (" — dead letters need attention" if totals["dead"] else ""))
    for r in rows:
        line = (f"{r['notification_id'][:8]} {r['employer_id']} {r['channel']:<7} "
                f"{r['status']:<7} attempts={r['attempts']}")
        if r["last_error"] and r["status"] != "sent":
            line += f"  {r['last_error'][:120]}"
        click.echo(line)


@notifications.command("retry")
@click.argument("notification_id")
@click.pass_context
def notifications_retry(ctx: click.Context, notification_id: str) -> None:
    """Put a dead letter back in the queue (attempts reset); it is sent on the next pass."""
    from reconciler.notify import retry_dead

    app = _app(ctx)
    with app.engine.begin() as conn:
        if not retry_dead(conn, notification_id, datetime.now(UTC)):
            raise FatalError(f"no dead notification {notification_id}; "
                             "see `reconciler notifications list --status dead`")
    click.echo(f"notification {notification_id} queued again")


@main.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Check the hash chain; exit 1 naming the first edited or deleted entry."""
    from reconciler.audit import verify

    with _app(ctx).engine.connect() as conn:
        ok, _count, message = verify(conn)
    click.echo(message)
    if not ok:
        raise FatalError("audit chain broken: " + message)


def _register_desk() -> None:
    from reconciler.web.commands import serve, users

    main.add_command(serve)
    main.add_command(users)


_register_desk()

if __name__ == "__main__":  # pragma: no cover
    main()
