"""Employer digests through a real SMTP server (aiosmtpd) and a real local HTTP server.

The worked example (feeds.md) gives employer 7000000025 two things to hear about as of
2026-11-01: Maria Grace Dela Cruz registered on its behalf, and Muhammad Imran Khan's
wage declared at 3,750 against 5,000 paid — to correct by 2026-12-01 (30 days). Employer
7000000017 has nothing new and hears nothing. The example's webhook URL is not on this
machine, so each test rewrites the employers file to point it at the local server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Table, create_engine, func, select

from reconciler.cli import main
from reconciler.config import NotifySettings, load_settings
from reconciler.notify import NotificationCollector, Notifier
from reconciler.notify.channels import SIGNATURE_HEADER, verify
from reconciler.notify.tables import decision_notices, notifications, notified_findings
from reconciler.pipeline import Reconciler
from reconciler.review import ReviewDesk
from reconciler.storage import create_db_engine, findings, outbox
from tests.integration.conftest import Broker, SmtpServer, WebhookServer
from tests.integration.test_bus import consume, outbox_ids, validate

SECRET = "test-webhook-secret"


def cli(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def point_webhook_at(inbox: Path, url: str, language: str | None = None) -> None:
    extra = ",language" if language else ""
    value = f",{language}" if language else ""
    (inbox / "employers" / "employers.csv").write_text(
        f"employer_id,name,email,webhook_url{extra}\n"
        f"7000000017,Al Noor Contracting,hr@alnoor.example,{value}\n"
        f"7000000025,Gulf Catering Co,payroll@gulfcatering.example,{url}{value}\n",
        encoding="utf-8")


def rows(url: str, table: Table, *where: Any) -> list[dict[str, Any]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        out = [dict(r) for r in conn.execute(select(table).where(*where)).mappings()]
    engine.dispose()
    return out


def test_example_run_sends_one_digest_and_publishes_everything_once(
        env: dict[str, str], smtp_server: SmtpServer, webhook_server: WebhookServer,
        kafka_broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    point_webhook_at(Path(env["RECONCILER_INBOX"]), webhook_server.url)
    monkeypatch.setenv("RECONCILER_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("RECONCILER_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("RECONCILER_KAFKA_BOOTSTRAP", kafka_broker.bootstrap)
    cli("db", "upgrade")
    report = json.loads(cli("run", "--once").stdout)
    assert report["notifications"] == {"planned": 1, "sent": 2, "retrying": 0, "dead": 0}
    # 2 findings opened + the auto-registration + employer.notified by email and by webhook
    assert report["outbox"] == {"published": 5, "pending": 0}

    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert smtp_server.envelopes[0][1] == ["payroll@gulfcatering.example"]
    assert mail["From"] == "reconciler@localhost"
    assert "7000000025" in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    registered, _, rest = text.partition("TO CORRECT BY 2026-12-01")
    assert "Maria Grace De La Cruz" in registered and "REGISTERED ON YOUR BEHALF" in registered
    assert "Muhammad Imran Khan" in rest and "declared: 3750.0" in rest
    assert "HOW TO DISPUTE" in rest
    assert "2735590867" not in text and "0867" in text  # the ID is shown by its last digits
    assert 'dir="ltr"' in html and "Maria Grace De La Cruz" in html

    assert len(webhook_server.requests) == 1
    hook = webhook_server.requests[0]
    assert verify(SECRET, hook["headers"][SIGNATURE_HEADER], hook["body"])
    assert not verify("another-secret", hook["headers"][SIGNATURE_HEADER], hook["body"])
    body = json.loads(hook["body"])
    assert body["employer_id"] == "7000000025" and body["respond_by"] == "2026-12-01"
    assert [i["rule"] for i in body["registered"]] == ["missing_registration"]
    assert [i["rule"] for i in body["corrections"]] == ["wage_underdeclared"]

    url = env["RECONCILER_DATABASE_URL"]
    ids = set(outbox_ids(url))
    events = [validate(r) for r in consume(kafka_broker.bootstrap, ids)]
    assert {e["id"] for e in events} == ids
    notified = [e for e in events if e["type"] == "org.reconciler.employer.notified"]
    assert sorted(e["data"]["channel"] for e in notified) == ["email", "webhook"]
    assert {e["subject"] for e in notified} == {"7000000025"}
    assert len(rows(url, notified_findings)) == 2

    # running again tells nobody anything twice and publishes nothing new
    report = json.loads(cli("run", "--once").stdout)
    assert report["notifications"] == {"planned": 0, "sent": 0, "retrying": 0, "dead": 0}
    assert report["outbox"] == {"published": 0, "pending": 0}
    assert len(smtp_server.messages) == 1 and len(webhook_server.requests) == 1
    assert "0 pending, 2 sent, 0 dead" in cli("notifications", "list").stdout


def test_broker_down_during_the_run_the_next_run_delivers_without_repeating_the_digest(
        env: dict[str, str], smtp_server: SmtpServer, kafka_broker: Broker,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("RECONCILER_KAFKA_BOOTSTRAP", kafka_broker.bootstrap)
    config = Path(env["RECONCILER_INBOX"]).parent / "fast.yaml"
    config.write_text("rules_file: " + str(Path(__file__).resolve().parents[2] / "config"
                                           / "rules.yaml")
                      + "\nbus: {send_timeout_seconds: 2}\n", encoding="utf-8")
    monkeypatch.setenv("RECONCILER_CONFIG", str(config))
    kafka_broker.stop()
    cli("db", "upgrade")
    report = json.loads(cli("run", "--once").stdout)
    assert report["notifications"]["sent"] == 1  # the example's webhook is off: no secret
    assert report["outbox"]["pending"] == 4 and report["outbox"]["published"] == 0

    kafka_broker.start()
    report = json.loads(cli("run", "--once").stdout)
    assert report["outbox"] == {"published": 4, "pending": 0}
    assert report["notifications"]["planned"] == 0
    assert len(smtp_server.messages) == 1
    url = env["RECONCILER_DATABASE_URL"]
    ids = set(outbox_ids(url))
    assert len(ids) == 4
    assert {validate(r)["id"] for r in consume(kafka_broker.bootstrap, ids)} == ids


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _planned_run(env: dict[str, str], webhook_server: WebhookServer,
                 monkeypatch: pytest.MonkeyPatch) -> Callable[..., Notifier]:
    """Run the example with only the webhook channel on (no SMTP); return a factory of
    notifiers over the same database with an injected clock."""
    point_webhook_at(Path(env["RECONCILER_INBOX"]), webhook_server.url)
    monkeypatch.setenv("RECONCILER_WEBHOOK_SECRET", SECRET)
    cli("db", "upgrade")
    cli("run", "--once")

    def notifier(clock: Clock, **settings: object) -> Notifier:
        engine = create_db_engine(env["RECONCILER_DATABASE_URL"])
        return Notifier(engine, NotifySettings(**settings),  # type: ignore[arg-type]
                        env={"RECONCILER_WEBHOOK_SECRET": SECRET}, clock=clock)

    return notifier


def test_webhook_failing_then_recovering_is_retried_with_backoff_and_sent_once(
        env: dict[str, str], webhook_server: WebhookServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    webhook_server.script = [503, 503]  # down for the run and the first retry
    notifier = _planned_run(env, webhook_server, monkeypatch)
    url = env["RECONCILER_DATABASE_URL"]
    [row] = rows(url, notifications)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "503" in row["last_error"]

    clock = Clock()
    n = notifier(clock, backoff_seconds=60)
    assert n.deliver_due().sent == 0 and len(webhook_server.requests) == 1  # not due yet
    clock.advance(61)
    assert n.deliver_due().retrying == 1  # second 503; next wait doubles to 120 s
    clock.advance(61)
    assert n.deliver_due().sent == 0 and len(webhook_server.requests) == 2
    clock.advance(60)
    assert n.deliver_due().sent == 1
    assert [r["status"] for r in webhook_server.requests] == [503, 503, 200]
    [row] = rows(url, notifications)
    assert (row["status"], row["attempts"]) == ("sent", 3)
    assert len(rows(url, outbox, outbox.c.type == "org.reconciler.employer.notified")) == 1
    clock.advance(10_000)
    assert n.deliver_due().sent == 0 and len(webhook_server.requests) == 3
    n.engine.dispose()


def test_dead_letter_after_max_attempts_shows_in_cli_and_metrics(
        env: dict[str, str], webhook_server: WebhookServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    webhook_server.script = [500] * 3
    notifier = _planned_run(env, webhook_server, monkeypatch)
    clock = Clock()
    n = notifier(clock, max_attempts=3, backoff_seconds=1)
    for _ in range(2):
        clock.advance(3600)
        n.deliver_due()
    url = env["RECONCILER_DATABASE_URL"]
    [row] = rows(url, notifications)
    assert (row["status"], row["attempts"]) == ("dead", 3)
    clock.advance(3600)
    n.deliver_due()
    assert len(webhook_server.requests) == 3  # a dead letter is not retried on its own

    listing = cli("notifications", "list", "--status", "dead", "--json").stdout
    [dead] = [json.loads(line) for line in listing.splitlines()]
    assert dead["employer_id"] == "7000000025" and dead["channel"] == "webhook"
    assert "500" in dead["last_error"]
    assert "1 dead" in cli("notifications", "list").stdout
    samples = {tuple(s.labels.values()): s.value
               for metric in NotificationCollector(n.engine).collect() for s in metric.samples}
    assert samples[("webhook", "dead")] == 1

    cli("notifications", "retry", row["notification_id"])  # the operator's second chance
    clock.advance(3600)
    assert n.deliver_due().sent == 1
    assert len(rows(url, notifications, notifications.c.status == "sent")) == 1
    n.engine.dispose()


def test_permanent_refusal_is_dead_at_once_and_arabic_digest_is_right_to_left(
        env: dict[str, str], smtp_server: SmtpServer, webhook_server: WebhookServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    webhook_server.script = [410]  # the endpoint is gone: retrying cannot help
    point_webhook_at(Path(env["RECONCILER_INBOX"]), webhook_server.url, language="ar")
    monkeypatch.setenv("RECONCILER_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("RECONCILER_WEBHOOK_SECRET", SECRET)
    cli("db", "upgrade")
    report = json.loads(cli("run", "--once").stdout)
    assert report["notifications"] == {"planned": 1, "sent": 1, "retrying": 0, "dead": 1}
    [mail] = smtp_server.messages
    assert mail["Content-Language"] == "ar"
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert '<html lang="ar" dir="rtl">' in html and "عمال سجلناهم نيابة عنكم" in html
    assert "الأجر الخاضع للاشتراك المصرح به أقل من الفعلي" in html
    engine = create_engine(env["RECONCILER_DATABASE_URL"])
    with engine.connect() as conn:
        dead = conn.execute(select(func.count()).select_from(notifications)
                            .where(notifications.c.status == "dead")).scalar_one()
    engine.dispose()
    assert dead == 1


def test_smtp_down_then_up_the_digest_is_retried_and_sent_once(
        env: dict[str, str], smtp_server: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.conftest import free_port

    dead_smtp = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("RECONCILER_SMTP_URL", dead_smtp)
    cli("db", "upgrade")
    report = json.loads(cli("run", "--once").stdout)
    assert report["notifications"] == {"planned": 1, "sent": 0, "retrying": 1, "dead": 0}
    url = env["RECONCILER_DATABASE_URL"]
    [row] = rows(url, notifications)
    assert row["channel"] == "email" and "unavailable" in row["last_error"]

    clock = Clock()
    clock.advance(3600)
    engine = create_db_engine(url)
    notifier = Notifier(engine, NotifySettings(smtp_url=smtp_server.url), env={},
                        clock=clock)
    assert notifier.deliver_due().sent == 1
    assert notifier.deliver_due().sent == 0
    engine.dispose()
    [mail] = smtp_server.messages
    assert mail["Message-ID"] == f"<{row['notification_id']}@reconciler>"
    [row] = rows(url, notifications)
    assert (row["status"], row["attempts"]) == ("sent", 2)


@pytest.mark.parametrize("language", ["en", "ar"])
def test_after_a_desk_confirmation_the_employer_hears_what_was_done_once(
        env: dict[str, str], smtp_server: SmtpServer, webhook_server: WebhookServer,
        monkeypatch: pytest.MonkeyPatch, language: str) -> None:
    # The first digest asks Gulf Catering to correct Imran's wage; an officer confirms the
    # finding (the registry's declared wage becomes 5,000); the next run's digest tells
    # the employer so, in its language, and only once. A dismissal of something it was
    # never told is no news.
    point_webhook_at(Path(env["RECONCILER_INBOX"]), webhook_server.url, language)
    monkeypatch.setenv("RECONCILER_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("RECONCILER_WEBHOOK_SECRET", SECRET)
    cli("db", "upgrade")
    cli("run", "--once")
    assert len(smtp_server.messages) == 1
    url = env["RECONCILER_DATABASE_URL"]
    [wage] = rows(url, findings, findings.c.rule == "wage_underdeclared")

    app = Reconciler.from_settings(load_settings(), migrate=False)
    with app.engine.begin() as conn:
        ReviewDesk(conn, app.registry, "olga", datetime.now(UTC)).decide(
            wage["finding_id"], "confirm", "payroll checked")
    app.engine.dispose()
    report = json.loads(cli("run", "--once").stdout)
    assert report["notifications"]["planned"] == 1

    assert len(smtp_server.messages) == 2
    text = smtp_server.messages[1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    heading, done = {"en": ("DECIDED AFTER REVIEW",
                            "we set the contributory wage to the wage your payroll shows"),
                     "ar": ("قرارات بعد المراجعة", "عدّلنا الأجر الخاضع للاشتراك")}[language]
    assert heading in text and done in text and "Muhammad Imran Khan" in text
    assert "REGISTERED ON YOUR BEHALF" not in text and "TO CORRECT" not in text
    assert wage["finding_id"][:8].upper() in text  # the reference the employer quotes
    body = json.loads(webhook_server.requests[1]["body"])
    assert [(i["rule"], i["decision"]) for i in body["decisions"]] == [
        ("wage_underdeclared", "confirm")]
    told = [r["payload"] for r in rows(url, outbox,
                                       outbox.c.type == "org.reconciler.employer.notified")
            if r["payload"]["decisions"]]
    assert sorted((p["channel"], *p["decisions"]) for p in told) == [
        ("email", wage["finding_id"]), ("webhook", wage["finding_id"])]

    # running again tells nothing twice
    report = json.loads(cli("run", "--once").stdout)
    assert report["notifications"]["planned"] == 0 and len(smtp_server.messages) == 2


def test_a_dismissal_of_a_finding_the_employer_was_never_told_is_not_news(
        env: dict[str, str], smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("db", "upgrade")
    cli("run", "--once")  # no channel yet: nothing is planned, nothing is told
    url = env["RECONCILER_DATABASE_URL"]
    [wage] = rows(url, findings, findings.c.rule == "wage_underdeclared")
    app = Reconciler.from_settings(load_settings(), migrate=False)
    with app.engine.begin() as conn:
        ReviewDesk(conn, app.registry, "olga", datetime.now(UTC)).decide(
            wage["finding_id"], "dismiss", "the payroll line is a one-off bonus")
    app.engine.dispose()
    monkeypatch.setenv("RECONCILER_SMTP_URL", smtp_server.url)
    cli("run", "--once")
    [mail] = smtp_server.messages  # Maria's registration only
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "REGISTERED ON YOUR BEHALF" in text
    assert "Muhammad Imran Khan" not in text and "DECIDED AFTER REVIEW" not in text
    assert [n["status"] for n in rows(url, decision_notices)] == ["skipped"]
