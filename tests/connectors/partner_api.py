"""A partner's REST API, served by uvicorn on a free loopback port in a thread, that injects
the faults a real partner shows: slow pages, 500s, 429s with ``Retry-After``, malformed
pages, connections dropped mid-body, refused or expired tokens.

Rows are the partner's own shape (camelCase, nested), so the connector's field mapping is
exercised; pages are keyset-paginated by (``modifiedAt``, ``id``) with a relative ``next``
link. Faults are scripted by request number (``/v1/contracts`` requests, counted from 1) and
fire once each.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

LOOPBACK = "127.0.0.1"
CLIENT_ID = "reconciler"
CLIENT_SECRET = "s3cret-for-tests"  # a test fixture's own secret
STATIC_TOKEN = "static-token-for-tests"
SLOW_SECONDS = 1.0  # well beyond the connector's read timeout in the tests (0.2 s)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class PartnerState:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: dict[int, str] = field(default_factory=dict)  # request number -> fault
    requests: list[tuple[int, str, int]] = field(default_factory=list)  # (n, url, status)
    tokens: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.rows.clear()
            self.faults.clear()
            self.requests.clear()
            self.tokens.clear()
            self.tokens_issued = 0

    def put(self, row: dict[str, Any]) -> None:
        with self.lock:
            self.rows[row["id"]] = row

    def fired(self) -> list[tuple[int, str, int]]:
        with self.lock:
            return list(self.requests)


def _ordered(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows.values(), key=lambda r: (r["modifiedAt"], r["id"]))


def create_partner_app(state: PartnerState) -> FastAPI:
    app = FastAPI()

    @app.post("/oauth/token")
    async def token(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        try:
            decoded = base64.b64decode(header.removeprefix("Basic ")).decode()
            user, _, password = decoded.partition(":")
        except ValueError:
            user = password = ""
        form = (await request.body()).decode()
        if "grant_type=client_credentials" not in form or (user, password) != (
                CLIENT_ID, CLIENT_SECRET):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        issued = secrets.token_hex(8)
        with state.lock:
            state.tokens.add(issued)
            state.tokens_issued += 1
        return JSONResponse({"access_token": issued, "token_type": "Bearer",
                             "expires_in": 3600})

    @app.get("/v1/contracts")
    async def contracts(request: Request, limit: int = 100, updated_since: str | None = None,
                        after: str | None = None) -> Response:
        with state.lock:
            number = len(state.requests) + 1
            fault = state.faults.pop(number, None)
            if fault == "revoke":
                state.tokens.clear()
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            authorised = bearer == STATIC_TOKEN or bearer in state.tokens
            rows = _ordered(state.rows)
        status = 200
        if not authorised or fault == "401":
            status = 401
        elif fault in ("500", "429", "403", "400"):
            status = int(fault)
        with state.lock:
            state.requests.append((number, str(request.url), status))
        if status == 401:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        if status == 429:
            return JSONResponse({"error": "slow down"}, status_code=429,
                                headers={"Retry-After": "2"})
        if status != 200:
            return JSONResponse({"error": f"injected {status}"}, status_code=status)
        if updated_since is not None:
            since = datetime.fromisoformat(updated_since.replace("Z", "+00:00"))
            rows = [r for r in rows if datetime.fromisoformat(
                r["modifiedAt"].replace("Z", "+00:00")) >= since]
        if after is not None:
            at, _, key = after.partition("|")
            rows = [r for r in rows if (r["modifiedAt"], r["id"]) > (at, key)]
        page = rows[:limit]
        link = None
        if len(rows) > limit:
            query = {"limit": limit, "after": f"{page[-1]['modifiedAt']}|{page[-1]['id']}"}
            if updated_since is not None:
                query["updated_since"] = updated_since
            link = "/v1/contracts?" + urlencode(query)
        body = json.dumps({"data": page, "next": link}).encode()
        if fault == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if fault == "malformed":
            return Response(body[: len(body) // 2], media_type="application/json")
        if fault == "drop":
            async def cut() -> AsyncIterator[bytes]:
                yield body[: len(body) // 2]
                raise ConnectionAbortedError("injected: connection dropped mid-body")

            return StreamingResponse(cut(), media_type="application/json",
                                     headers={"Content-Length": str(len(body))})
        return Response(body, media_type="application/json")

    return app


@dataclass
class PartnerServer:
    url: str
    state: PartnerState


def serve_partner() -> Iterator[PartnerServer]:
    """Run the partner until the generator is closed (a fixture's body)."""
    state = PartnerState()
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_partner_app(state), log_level="critical", lifespan="off",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the partner API did not start")
        time.sleep(0.01)
    try:
        yield PartnerServer(url=f"http://{LOOPBACK}:{port}", state=state)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
