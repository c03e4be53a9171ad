"""The desk's application factory: ``create_app(settings, reconciler)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from reconciler.pipeline import Reconciler
from reconciler.review import ReviewError
from reconciler.web.deps import Desk, LoginRequired
from reconciler.web.routes import api, pages
from reconciler.web.settings import WebSettings

HERE = Path(__file__).resolve().parent


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def create_app(settings: WebSettings, reconciler: Reconciler) -> FastAPI:
    app = FastAPI(title="reconciler — compliance officer's desk", version="1",
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs",
                  redoc_url=None)
    app.state.desk = Desk(settings, reconciler.engine, reconciler.registry,
                          tuple(sorted(reconciler.catalogue.signs)))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")}
                  for e in exc.errors()]
        text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        if not request.url.path.startswith("/api/"):
            return pages.error_page(request, 422, text)
        return JSONResponse({"detail": text, "errors": errors}, status_code=422)

    @app.exception_handler(ReviewError)
    async def _review(request: Request, exc: ReviewError) -> Response:
        if not request.url.path.startswith("/api/"):
            return pages.error_page(request, exc.status, str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith("/api/"):
            return pages.error_page(request, exc.status_code, str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
