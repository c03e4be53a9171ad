"""The REST connector: a paginated JSON API read incrementally, one page = one delivery.

The first request asks for rows changed since the stored cursor minus ``lag``
(``?{cursor_param}=…&{page_size_param}=…``); each answer holds the rows under
``records_path`` and the next page's URL under ``next_path`` (absolute or relative; absent
or null on the last page). Rows must come ordered by (``cursor_field``, ``tie_break_field``)
— a page out of order is fatal, because a checkpoint in the middle of an unordered stream
would lose rows on resume.

Each page is one :class:`~connectors.base.Delivery` whose hash is that of its mapped rows,
carrying the cursor after its last row, so ingest commits rows and cursor together and a
pull that fails resumes at the last committed page. With ``lag`` 0 the closed start's
boundary rows (``(updated_at, key) <= cursor``) are dropped here; with a lag the window
is read again on purpose (late rows) and ingest's row identity makes the re-read rows
no-ops.

Faults: timeouts, dropped connections, 5xx, 408 and 429 are retried (backoff with jitter,
``Retry-After`` honoured); 401 (after one token refresh for OAuth2) and other 4xx are
fatal; a page that is not the JSON the declaration describes is a
:class:`MalformedPage` naming its URL — this pull ends there (the next page's link is in
the broken body) and the next pull retries it from the checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import httpx

from connectors.base import Cursor, Delivery, RawRow, dig, map_row, parse_timestamp, rows_hash
from connectors.retry import RetryLater, RetryPolicy
from reconciler.config import AuthSettings, ConnectorSettings
from reconciler.errors import FatalError, SkippableError

RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class MalformedPage(SkippableError):
    """A page that is not the JSON its declaration describes; ``url`` says which."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(f"GET {url}: malformed page ({problem}); the pull stops at this page "
                         "and the next pull asks for it again — tell the partner if it persists")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _excerpt(response: httpx.Response) -> str:
    return response.text[:200].replace("\n", " ")


@dataclass
class Authenticator:
    """Request headers for the declared auth; secrets come from the environment, lazily, so
    a missing variable is this connector's fatal error, reported, not the whole run's."""

    settings: AuthSettings
    connector: str
    env: Mapping[str, str]
    clock: Callable[[], float] = time.monotonic
    _token: str | None = None
    _expires: float = 0.0
    _fresh: bool = False

    def _secret(self, key: str, variable: str | None) -> str:
        value = self.env.get(variable or "")
        if not value:
            raise FatalError(f"connector {self.connector}: the environment variable {variable} "
                             f"(named by auth.{key}) is not set")
        return value

    def headers(self, client: httpx.Client) -> dict[str, str]:
        kind = self.settings.type
        if kind == "none":
            return {}
        if kind == "bearer":
            return {"Authorization": "Bearer " + self._secret("token_env",
                                                              self.settings.token_env)}
        self._fresh = False
        if self._token is None or self.clock() >= self._expires:
            self._token, lifetime = self._fetch_token(client)
            self._expires = self.clock() + max(0.0, lifetime - 30)
            self._fresh = True
        return {"Authorization": f"Bearer {self._token}"}

    def rejected(self) -> bool:
        """A 401: drop the cached token; True when asking again with a new one makes sense."""
        retry = self.settings.type == "oauth2" and not self._fresh
        self._token = None
        return retry

    def _fetch_token(self, client: httpx.Client) -> tuple[str, float]:
        settings = self.settings
        assert settings.token_url is not None and settings.client_id is not None
        secret = self._secret("client_secret_env", settings.client_secret_env)
        form = {"grant_type": "client_credentials"}
        if settings.scope:
            form["scope"] = settings.scope
        url = settings.token_url
        try:
            response = client.post(url, data=form, auth=(settings.client_id, secret))
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise RetryLater(f"POST {url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code in RETRIABLE_STATUS:
            raise RetryLater(f"POST {url} answered {response.status_code}",
                             _retry_after(response))
        if response.status_code != 200:
            raise FatalError(f"connector {self.connector}: POST {url} answered "
                             f"{response.status_code} ({_excerpt(response)}): check client_id "
                             "and the secret named by auth.client_secret_env")
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise FatalError(f"POST {url}: no access_token in the answer") from exc
        return str(token), lifetime


@dataclass
class RestConnector:
    name: str
    feed: str
    endpoint: str
    cursor_field: str
    tie_break_field: str
    auth: Authenticator
    fields: Mapping[str, str] = field(default_factory=dict)
    lag: timedelta = timedelta(0)
    start: datetime | None = None
    page_size: int = 500
    records_path: str | None = "data"
    next_path: str | None = "next"
    cursor_param: str = "updated_since"
    page_size_param: str = "limit"
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(30.0, connect=10.0))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_pages: int = 1_000_000  # a partner whose next links never end is a bug, not data

    def deliveries(self, already_seen: Callable[[str], bool]) -> Iterator[Delivery]:
        return self.deliveries_from(None, already_seen)

    def deliveries_from(self, cursor: str | None,
                        already_seen: Callable[[str], bool]) -> Iterator[Delivery]:
        stored = Cursor.decode(cursor) if cursor else None
        params: dict[str, str] = {self.page_size_param: str(self.page_size)}
        since = stored.updated_at - self.lag if stored else self.start
        if since is not None:
            params[self.cursor_param] = since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        drop_upto = stored if stored is not None and not self.lag else None
        position = stored
        previous: Cursor | None = None
        url: str | None = str(httpx.URL(self.endpoint).copy_merge_params(params))
        visited: set[str] = set()
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            while url is not None:
                if url in visited or len(visited) >= self.max_pages:
                    raise FatalError(f"GET {url}: the partner's next links loop; fix next_path "
                                     "or report it to the partner")
                visited.add(url)
                page_url = url
                body = self.retry.call(lambda: self._get(client, page_url))  # noqa: B023 (called at once)
                records, link = self._parse(body, page_url)
                rows: list[RawRow] = []
                for line_no, record in enumerate(records, start=1):
                    if not isinstance(record, dict):
                        # not an object: delivered as-is so ingest quarantines it, with its line
                        rows.append((line_no, {"__malformed__": json.dumps(record)}))
                        continue
                    at = self._position(record)
                    if at is not None:
                        if previous is not None and at.order() < previous.order():
                            raise FatalError(
                                f"GET {page_url}: row {line_no} ({at.key}, {at.updated_at}) "
                                f"comes after ({previous.key}, {previous.updated_at}); the "
                                f"partner must order rows by {self.cursor_field}, "
                                f"{self.tie_break_field}")
                        previous = at
                        if drop_upto is not None and at.order() <= drop_upto.order():
                            continue  # the closed start's boundary: delivered last time
                        if position is None or at.order() > position.order():
                            position = at
                    rows.append((line_no, map_row(record, self.fields)))
                if rows:
                    content_hash = rows_hash(rows)
                    if not already_seen(content_hash):
                        yield Delivery(source=page_url, content_hash=content_hash,
                                       rows=iter(rows),
                                       cursor=position.encode() if position else None)
                url = urljoin(page_url, link) if link else None

    def _position(self, record: Mapping[str, Any]) -> Cursor | None:
        moment = parse_timestamp(dig(record, self.cursor_field))
        key = dig(record, self.tie_break_field)
        if moment is None or not isinstance(key, str | int | float):
            return None  # ingest judges the row; it cannot move the cursor
        return Cursor(moment, key)

    def _get(self, client: httpx.Client, url: str) -> bytes:
        for _ in range(2):  # the second pass only after a refused, refreshed OAuth2 token
            headers = self.auth.headers(client)
            try:
                response = client.get(url, headers=headers)
            except httpx.TimeoutException as exc:
                raise RetryLater(f"GET {url}: timed out ({type(exc).__name__})") from exc
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                raise RetryLater(f"GET {url}: connection failed ({type(exc).__name__}: "
                                 f"{exc})") from exc
            except httpx.HTTPError as exc:
                raise FatalError(f"GET {url}: {type(exc).__name__}: {exc}") from exc
            status = response.status_code
            if status == 200:
                return response.content
            if status in RETRIABLE_STATUS or status >= 500:
                raise RetryLater(f"GET {url} answered {status}", _retry_after(response))
            if status == 401 and self.auth.rejected():
                continue
            hint = ("check the credentials named in auth" if status in (401, 403)
                    else "check endpoint and parameters in the declaration")
            raise FatalError(f"connector {self.name}: GET {url} answered {status} "
                             f"({_excerpt(response)}): {hint}")
        raise FatalError(f"connector {self.name}: GET {url} answered 401 with a fresh token: "
                         "check client_id and the secret named by auth.client_secret_env")

    def _parse(self, body: bytes, url: str) -> tuple[list[Any], str | None]:
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise MalformedPage(url, f"not JSON: {exc}") from None
        records = (document if self.records_path is None else
                   dig(document, self.records_path) if isinstance(document, dict) else None)
        if not isinstance(records, list):
            raise MalformedPage(url, f"no list of rows at {self.records_path or 'the top'}")
        link = (dig(document, self.next_path)
                if self.next_path and isinstance(document, dict) else None)
        if link is not None and not isinstance(link, str):
            raise MalformedPage(url, f"{self.next_path} is not a URL")
        return records, link or None


def build_rest(declared: ConnectorSettings, env: Mapping[str, str] | None = None,
               sleep: Callable[[float], None] | None = None) -> RestConnector:
    """The connector a ``type: rest`` declaration describes (``ConnectorSettings``)."""
    assert declared.endpoint and declared.cursor_field and declared.tie_break_field
    policy = RetryPolicy(max_attempts=declared.max_attempts,
                         backoff_seconds=declared.backoff_seconds,
                         max_backoff_seconds=declared.max_backoff_seconds,
                         sleep=sleep or time.sleep)
    read = declared.timeout_seconds or 30.0
    return RestConnector(
        name=declared.name, feed=declared.feed, endpoint=declared.endpoint,
        cursor_field=declared.cursor_field, tie_break_field=declared.tie_break_field,
        auth=Authenticator(declared.auth or AuthSettings(), declared.name,
                           os.environ if env is None else env),
        fields=dict(declared.fields), lag=timedelta(seconds=declared.lag_seconds),
        start=declared.start, page_size=declared.page_size,
        records_path=declared.records_path if declared.records_path is not None else "data",
        next_path=declared.next_path if declared.next_path is not None else "next",
        cursor_param=declared.cursor_param or "updated_since",
        page_size_param=declared.page_size_param or "limit",
        timeout=httpx.Timeout(read, connect=declared.connect_timeout_seconds or min(read, 10.0)),
        retry=policy,
    )
