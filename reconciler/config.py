"""Settings: YAML in ``config/``, validated with pydantic, overridden by the environment.

Load order (later wins): the defaults below → the YAML file → ``RECONCILER_*`` variables.
Secrets never live in YAML: a setting that needs one names the environment variable
that holds it (``*_env`` keys), and a database URL with a password in the file is refused.
Every problem is reported at once, each with the file, the key and what was expected.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url

from reconciler.contract import FEED_SPECS
from reconciler.errors import ConfigError
from reconciler.identity.identifiers import IdentifierProfile

if TYPE_CHECKING:
    from reconciler.identity.resolve import WeightTable

REPO_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
FEEDS = ("contracts", "permits", "payroll", "employers", "contributors", "engagements")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Strict):
    """When a job runs: a cron expression (``"0 2 * * *"``) or a fixed interval in seconds."""

    cron: str | None = None
    interval_seconds: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of 'cron' or 'interval_seconds'")
        return self


_ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


class AuthSettings(_Strict):
    """How a REST connector authenticates. Secrets only by environment-variable name:
    ``bearer`` reads the token from ``token_env``; ``oauth2`` (client credentials) posts
    ``client_id`` and the secret from ``client_secret_env`` to ``token_url``."""

    type: Literal["none", "bearer", "oauth2"] = "none"
    token_env: str | None = Field(default=None, pattern=_ENV_NAME)
    token_url: str | None = Field(default=None, pattern=r"^https?://")
    client_id: str | None = None
    client_secret_env: str | None = Field(default=None, pattern=_ENV_NAME)
    scope: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> AuthSettings:
        needed = {"none": (), "bearer": ("token_env",),
                  "oauth2": ("token_url", "client_id", "client_secret_env")}[self.type]
        missing = [key for key in needed if getattr(self, key) is None]
        if missing:
            raise ValueError(f"auth type {self.type} needs {', '.join(missing)}")
        return self


_ONLY_FOR: dict[str, tuple[str, ...]] = {
    "filedrop": ("path", "pattern"),
    "rest": ("endpoint", "auth", "records_path", "next_path", "cursor_param",
             "page_size_param", "timeout_seconds", "connect_timeout_seconds"),
    "sql": ("url_env", "view", "view_schema"),
}
_INCREMENTAL = ("fields", "cursor_field", "tie_break_field", "lag_seconds", "start",
                "page_size", "max_attempts", "backoff_seconds", "max_backoff_seconds")
_REQUIRED_FOR: dict[str, tuple[str, ...]] = {
    "filedrop": ("path",),
    "rest": ("endpoint", "cursor_field", "tie_break_field"),
    "sql": ("url_env", "view", "cursor_field", "tie_break_field"),
}


class ConnectorSettings(_Strict):
    """A partner connector as a declaration; ``type`` picks the implementation.

    ``filedrop`` reads ``path`` under the inbox. ``rest`` and ``sql`` are incremental: they
    read rows changed since a stored cursor (``cursor_field``, a timestamp with zone, with
    ``tie_break_field`` ordering equal timestamps), re-reading ``lag_seconds`` behind it, and
    map source fields onto contract columns with ``fields`` (``{contract_column: source}``,
    dotted paths into nested JSON allowed). See ``docs/connectors.md``.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    type: Literal["filedrop", "rest", "sql"] = "filedrop"
    feed: Literal["contracts", "permits", "payroll", "employers", "contributors", "engagements"]
    schedule: Schedule = Schedule(interval_seconds=900)
    # filedrop
    path: str | None = Field(default=None, description="folder under the inbox (filedrop)")
    pattern: str = "*.csv"
    # rest and sql
    fields: dict[str, str] = Field(default_factory=dict)
    cursor_field: str | None = None
    tie_break_field: str | None = None
    lag_seconds: float = Field(default=0, ge=0)
    start: datetime | None = Field(default=None, description="first cursor, when none stored")
    page_size: int = Field(default=500, ge=1, le=100_000)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, gt=0)
    max_backoff_seconds: float = Field(default=60.0, gt=0)
    # rest
    endpoint: str | None = Field(default=None, pattern=r"^https?://")
    auth: AuthSettings | None = None
    records_path: str | None = None
    next_path: str | None = None
    cursor_param: str | None = None
    page_size_param: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    connect_timeout_seconds: float | None = Field(default=None, gt=0)
    # sql
    url_env: str | None = Field(default=None, pattern=_ENV_NAME)
    view: str | None = None
    view_schema: str | None = None

    @model_validator(mode="after")
    def _keys_fit_type(self) -> ConnectorSettings:
        problems = [f"{key} is required for type {self.type}"
                    for key in _REQUIRED_FOR[self.type] if getattr(self, key) is None]
        if self.type == "filedrop":
            problems.extend(f"{key} is not used by type filedrop (only rest and sql)"
                            for key in _INCREMENTAL if key in self.model_fields_set)
        for other, keys in _ONLY_FOR.items():
            if other != self.type:
                problems.extend(f"{key} is not used by type {self.type} (only {other})"
                                for key in keys
                                if key in self.model_fields_set and getattr(self, key) is not None)
        if self.type != "filedrop" and self.start is not None and self.start.tzinfo is None:
            problems.append("start needs a time zone (add Z or +03:00)")
        if self.fields and self.type != "filedrop":
            unknown = sorted(set(self.fields) - set(_contract_columns(self.feed)))
            if unknown:
                problems.append(f"fields: {', '.join(unknown)} not a column of the "
                                f"{self.feed} contract")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _contract_columns(feed: str) -> tuple[str, ...]:
    return tuple(FEED_SPECS[feed].columns)


def _default_connectors() -> tuple[ConnectorSettings, ...]:
    return (
        ConnectorSettings(name="registry-contributors", feed="contributors", path="registry",
                          pattern="contributors*.csv"),
        ConnectorSettings(name="registry-engagements", feed="engagements", path="registry",
                          pattern="engagements*.csv"),
        ConnectorSettings(name="employers", feed="employers", path="employers"),
        ConnectorSettings(name="contracts", feed="contracts", path="contracts"),
        ConnectorSettings(name="permits", feed="permits", path="permits"),
        ConnectorSettings(name="payroll", feed="payroll", path="payroll"),
    )


class IdentitySettings(_Strict):
    """Identifier profile and the two link thresholds (see README, *Identity*)."""

    id_length: int = Field(default=10, ge=4, le=20)
    id_check: Literal["luhn", "none"] = "luhn"
    id_prefixes: dict[str, str] = Field(
        default_factory=lambda: {"national_id": "1", "residence_id": "2", "border_number": "34"}
    )
    auto_threshold: float = Field(default=0.99, gt=0, lt=1)
    review_threshold: float = Field(default=0.80, gt=0, lt=1)
    max_block_size: int = Field(default=200, ge=2)
    # a weight table estimated from the data (``python -m reconciler.identity.training -o
    # FILE``), relative to the config file's folder; unset: the hand-set weights
    weights_file: Path | None = None

    @model_validator(mode="after")
    def _ordered(self) -> IdentitySettings:
        if self.review_threshold >= self.auto_threshold:
            raise ValueError("review_threshold must be below auto_threshold")
        return self

    @property
    def profile(self) -> IdentifierProfile:
        return IdentifierProfile(length=self.id_length, check=self.id_check,
                                 prefixes=dict(self.id_prefixes))


class BusSettings(_Strict):
    """The outbox relay to Kafka (``docs/events.md``). The bootstrap servers are the top-level
    ``kafka_bootstrap``; unset, events stay in the outbox. Secrets only by env-var name."""

    topic: str = Field(default="reconciler.events", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    source: str = Field(default="urn:reconciler", min_length=1,
                        description="the CloudEvents `source` of every event")
    client_id: str = "reconciler-relay"
    batch_size: int = Field(default=500, ge=1, le=10_000)
    send_timeout_seconds: float = Field(default=10.0, gt=0)
    interval_seconds: int = Field(default=5, gt=0, description="daemon relay cadence")
    max_backoff_seconds: int = Field(default=300, gt=0)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password_env: str = "RECONCILER_KAFKA_SASL_PASSWORD"  # noqa: S105 (a variable name)

    @model_validator(mode="after")
    def _sasl(self) -> BusSettings:
        if self.security_protocol.startswith("SASL") and not (
                self.sasl_mechanism and self.sasl_username):
            raise ValueError(f"security_protocol {self.security_protocol} needs "
                             "sasl_mechanism and sasl_username (the password comes from "
                             "the variable named by sasl_password_env)")
        return self


class NotifySettings(_Strict):
    """Employer digests (``docs/notifications.md``). Email is on when ``smtp_url`` is set
    (``RECONCILER_SMTP_URL``); webhooks when the variable named by ``webhook_secret_env``
    holds a secret. With neither, nothing is planned and nothing is sent."""

    smtp_url: str | None = None
    sender: str = "reconciler@localhost"
    webhook_secret_env: str = "RECONCILER_WEBHOOK_SECRET"  # noqa: S105 (a variable name)
    default_language: Literal["en", "ar"] = "en"
    correction_days: int = Field(default=30, ge=1)
    dispute_url: str | None = None
    dispute_email: str | None = None
    max_attempts: int = Field(default=5, ge=1)
    backoff_seconds: float = Field(default=60.0, gt=0)
    max_backoff_seconds: float = Field(default=3600.0, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0)
    interval_seconds: int = Field(default=60, gt=0, description="daemon delivery cadence")

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^smtps?://[^/]+", value):
            raise ValueError("expected smtp://host:port or smtps://host:port")
        return value


class LeaseSettings(_Strict):
    """The scheduler lease (``reconciler/lease.py``): across replicas on one database, one
    daemon schedules (the leader) and the others stand by. The leader renews every
    ``renew_seconds`` (default: a third of the TTL); a standby takes over once
    ``ttl_seconds`` pass without a renewal, or at once when the leader releases the lease on
    a clean shutdown."""

    ttl_seconds: float = Field(default=30.0, gt=0)
    renew_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _renew_inside_ttl(self) -> LeaseSettings:
        if self.renew_seconds is not None and self.renew_seconds >= self.ttl_seconds:
            raise ValueError("renew_seconds must be shorter than ttl_seconds (a third of it "
                             "leaves room for two missed renewals)")
        return self

    @property
    def renew_interval(self) -> float:
        return self.renew_seconds if self.renew_seconds is not None else self.ttl_seconds / 3


class Settings(_Strict):
    """Everything the daemon needs; built by :func:`load_settings`, passed in, never global."""

    database_url: str = "sqlite:///var/reconciler.db"
    inbox: Path = Path("var/inbox")
    as_of: date | None = None
    kafka_bootstrap: str | None = None
    rules_file: Path = Path("rules.yaml")
    connectors: tuple[ConnectorSettings, ...] = Field(default_factory=_default_connectors)
    reconcile_schedule: Schedule = Schedule(cron="0 2 * * *")
    identity: IdentitySettings = IdentitySettings()
    bus: BusSettings = BusSettings()
    notify: NotifySettings = NotifySettings()
    lease: LeaseSettings = LeaseSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    config_dir: Path = REPO_CONFIG_DIR

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            make_url(value)
        except Exception as exc:  # sqlalchemy raises ArgumentError with a clear text
            raise ValueError(f"not a SQLAlchemy URL ({exc})") from exc
        return value

    @model_validator(mode="after")
    def _unique_connectors(self) -> Settings:
        names = [c.name for c in self.connectors]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"connector names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def is_embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def rules_path(self) -> Path:
        path = self.rules_file
        return path if path.is_absolute() else self.config_dir / path

    def identity_weights(self) -> WeightTable | None:
        """The weight table ``identity.weights_file`` names, read and checked; None for the
        hand-set weights. Raises ValueError naming the file and what is wrong."""
        path = self.identity.weights_file
        if path is None:
            return None
        path = path if path.is_absolute() else self.config_dir / path
        from reconciler.identity.resolve import WeightTable

        try:
            return WeightTable.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"identity.weights_file {path}: {exc!r}; write one with "
                             "python -m reconciler.identity.training -o FILE") from exc

    @model_validator(mode="after")
    def _weights_readable(self) -> Settings:
        self.identity_weights()
        return self

    def today(self) -> date:
        """The as-of date: ``RECONCILER_AS_OF`` for replays and tests, otherwise today (UTC)."""
        from datetime import UTC, datetime

        return self.as_of or datetime.now(UTC).date()


ENV_OVERRIDES = {
    "RECONCILER_DATABASE_URL": "database_url",
    "RECONCILER_INBOX": "inbox",
    "RECONCILER_AS_OF": "as_of",
    "RECONCILER_KAFKA_BOOTSTRAP": "kafka_bootstrap",
    "RECONCILER_LOG_LEVEL": "log_level",
    "RECONCILER_SMTP_URL": "notify.smtp_url",
}


def _describe(error: Mapping[str, Any], source: str) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "(top level)"
    shown = error.get("input")
    got = "" if isinstance(shown, dict) else f" (got {shown!r})"
    return f"{source}: {loc}: {error['msg']}{got}"


def load_settings(
    path: Path | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file (``RECONCILER_CONFIG``, else ``config/reconciler.yaml`` of this checkout
    when it exists, else built-in defaults), apply the environment, validate everything at once."""
    env = os.environ if env is None else env
    if path is None and env.get("RECONCILER_CONFIG"):
        path = Path(env["RECONCILER_CONFIG"])
    if path is None:
        candidate = REPO_CONFIG_DIR / "reconciler.yaml"
        path = candidate if candidate.exists() else None
    data: dict[str, Any] = {}
    source = "built-in defaults"
    problems: list[str] = []
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError as exc:
            raise ConfigError(source, ["file not found"]) from exc
        except yaml.YAMLError as exc:
            raise ConfigError(source, [f"not valid YAML: {exc}"]) from exc
        if not isinstance(loaded, dict):
            raise ConfigError(source, ["expected a mapping of settings at the top level"])
        data = loaded
        data.setdefault("config_dir", str(path.resolve().parent))
        url = str(data.get("database_url", ""))
        if url and _has_password(url):
            problems.append(
                f"{source}: database_url: a password does not belong in the file; "
                "set RECONCILER_DATABASE_URL in the environment instead"
            )
        notify = data.get("notify")
        smtp = str(notify.get("smtp_url") or "") if isinstance(notify, dict) else ""
        if smtp and _has_password(smtp.replace("smtps://", "smtp://", 1)):
            problems.append(
                f"{source}: notify.smtp_url: a password does not belong in the file; "
                "set RECONCILER_SMTP_URL in the environment instead"
            )
    for var, key in ENV_OVERRIDES.items():
        if env.get(var):
            section, _, name = key.rpartition(".")
            target = data
            if section:
                target = data[section] = dict(data.get(section) or {})
            target[name] = env[var]
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(
            _describe(e, "environment" if _from_env(e, env) else source) for e in exc.errors()
        )
        raise ConfigError(source, problems) from None
    if problems:
        raise ConfigError(source, problems)
    return settings


def _has_password(url: str) -> bool:
    try:
        return make_url(url).password is not None
    except Exception:
        return False


def _from_env(error: Mapping[str, Any], env: Mapping[str, str]) -> bool:
    top = str(error["loc"][0]) if error["loc"] else ""
    return any(key.split(".")[0] == top and env.get(var) for var, key in ENV_OVERRIDES.items())
