"""The ``bus`` and ``notify`` settings: defaults, YAML, environment, secrets kept out."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import load_settings
from reconciler.errors import ConfigError


def test_defaults_leave_the_bus_and_notifications_off() -> None:
    settings = load_settings(env={})
    assert settings.kafka_bootstrap is None
    assert settings.notify.smtp_url is None
    assert settings.bus.topic == "reconciler.events"


def test_smtp_url_comes_from_the_environment_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("notify: {sender: desk@institution.example, smtp_url: 'smtp://a:25'}\n"
                    "bus: {security_protocol: SSL, ssl_cafile: /etc/ca.pem}\n")
    settings = load_settings(path, env={"RECONCILER_SMTP_URL": "smtp://127.0.0.1:2525"})
    assert settings.notify.smtp_url == "smtp://127.0.0.1:2525"
    assert settings.notify.sender == "desk@institution.example"
    assert settings.bus.ssl_cafile == Path("/etc/ca.pem")


def test_a_password_in_the_smtp_url_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("notify: {smtp_url: 'smtp://user:secret@mail.example:587'}\n")
    with pytest.raises(ConfigError, match="RECONCILER_SMTP_URL"):
        load_settings(path, env={})


def test_a_bad_smtp_url_in_the_environment_is_blamed_on_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"environment: notify\.smtp_url"):
        load_settings(env={"RECONCILER_SMTP_URL": "mail.example"})
