"""The desk's settings: where it listens, how sessions work, the SLA per rule.

Read from the environment (``RECONCILER_HTTP_*``, ``RECONCILER_SESSION_SECRET``,
``RECONCILER_SLA_DAYS``) over the defaults below; to be folded into the main configuration.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.errors import ConfigError

DEFAULT_SLA_DAYS: dict[str, int] = {
    "missing_registration": 10,
    "ghost_registration": 15,
    "wrong_employer": 15,
    "wage_underdeclared": 20,
    "late_registration": 30,
    "stale_engagement": 30,
    "identity_mismatch": 30,
    "duplicate_contributor": 30,
}


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    session_secret: str = Field(default_factory=lambda: secrets.token_urlsafe(32),
                                min_length=16)
    cookie_secure: bool = True
    session_minutes: int = Field(default=480, gt=0)
    token_minutes: int = Field(default=60, gt=0)
    lockout_attempts: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    sla_days: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_SLA_DAYS))
    default_sla_days: int = Field(default=30, gt=0)
    page_size: int = Field(default=50, ge=1, le=500)

    def sla_for(self, rule: str) -> int:
        return self.sla_days.get(rule, self.default_sla_days)


ENV = {
    "RECONCILER_HTTP_HOST": "host",
    "RECONCILER_HTTP_PORT": "port",
    "RECONCILER_SESSION_SECRET": "session_secret",
    "RECONCILER_HTTP_COOKIE_SECURE": "cookie_secure",
}


def load_web_settings(env: Mapping[str, str] | None = None,
                      sla_days: Mapping[str, int] | None = None) -> WebSettings:
    """Defaults, then the environment. ``sla_days`` per sign comes from the rule catalogue
    (``config/rules.yaml``, ``sla_days`` of each sign); ``RECONCILER_SLA_DAYS``
    (``rule=days,rule=days``) overrides single signs."""
    env = os.environ if env is None else env
    data: dict[str, object] = {key: env[var] for var, key in ENV.items() if env.get(var)}
    problems: list[str] = []
    sla = dict(sla_days if sla_days is not None else DEFAULT_SLA_DAYS)
    data["sla_days"] = sla
    if env.get("RECONCILER_SLA_DAYS"):
        for part in env["RECONCILER_SLA_DAYS"].split(","):
            rule, _, days = part.strip().partition("=")
            if not rule or not days.strip().isdigit() or int(days) <= 0:
                problems.append(f"RECONCILER_SLA_DAYS: expected rule=days (days > 0), "
                                f"got {part.strip()!r}")
                continue
            sla[rule.strip()] = int(days)
    try:
        settings = WebSettings.model_validate(data)
    except ValidationError as exc:
        problems.extend(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                        for e in exc.errors())
    if problems:
        raise ConfigError("environment", problems)
    return settings
