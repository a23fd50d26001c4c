"""``create_app(ctx)``: the Quart-Trio app, its error shape, metrics, OpenAPI and the page."""

from __future__ import annotations

from pathlib import Path

import trio
from quart import Response, g, request
from quart_schema import QuartSchema, hide
from quart_trio import QuartTrio

from tradercoin.http import account, admin, auth, orders, ws
from tradercoin.http.audit import security_event
from tradercoin.http.context import HttpContext, context
from tradercoin.http.drain import DrainBody
from tradercoin.http.errors import ApiError, error_response, install_error_handlers, json_response
from tradercoin.http.fast import OrdersFastPath
from tradercoin.http.guards import (
    AsciiIntConverter,
    MetricsPort,
    host_allowed,
    ids_out_of_range,
    security_headers,
)
from tradercoin.http.requestid import RequestIds
from tradercoin.http.responses import DocumentedResponses

__all__ = ["MAX_BODY", "create_app"]

MAX_BODY = 64 * 1024
BODY_TIMEOUT = 10  # seconds a request body may take to arrive (Quart's default is 60)
STATIC = Path(__file__).with_name("static")
READY_TIMEOUT = 2.0


def create_app(ctx: HttpContext) -> QuartTrio:
    """The app serving ``ctx``: REST under ``/api``, ``/ws``, the page at ``/``, health,
    metrics, and OpenAPI at ``/openapi.json`` (browsable at ``/docs``)."""
    app = QuartTrio("tradercoin", static_folder=str(STATIC), static_url_path="/static")
    app.url_map.converters["int"] = AsciiIntConverter  # before any rule: ASCII ids only
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, JSON_SORT_KEYS=False, BODY_TIMEOUT=BODY_TIMEOUT)
    app.extensions["tradercoin"] = ctx
    QuartSchema(
        app,
        info={"title": "tradercoin", "version": "0.1.0"},
        redoc_ui_path=None,
        scalar_ui_path=None,
        swagger_ui_path=None,  # served from the package below (no CDN)
        security_schemes={
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in_": "cookie", "name": auth.COOKIE},
        },
        security=[{"bearer": []}, {"cookie": []}],
        openapi_provider_class=DocumentedResponses,
    )
    install_error_handlers(app)
    app.before_request(_start_timer)
    app.before_request(_check_host)
    app.before_request(_check_ids)
    app.after_request(_finish)
    for module in (auth, orders, admin, account):
        module.register_routes(app)
    # In front of Quart, on ASGI: /ws, and cached GET /api/orders pages (both fall back to it).
    # Every request body is read before its response ends (drain.py; the fast path too).
    # The metrics port (--metrics-address) serves /metrics only (guards.MetricsPort).
    # Outermost: the request id (requestid.py) for the response header and the logs.
    inner = MetricsPort(DrainBody(ws.WsEndpoint(app.asgi_app, ctx)), lambda: ctx.metrics_port)
    app.asgi_app = RequestIds(OrdersFastPath(inner, ctx))  # type: ignore[method-assign]
    app.add_url_rule("/", view_func=index, methods=["GET"])
    app.add_url_rule("/docs", view_func=docs, methods=["GET"])
    app.add_url_rule("/healthz", view_func=healthz, methods=["GET"])
    app.add_url_rule("/readyz", view_func=readyz, methods=["GET"])
    app.add_url_rule("/metrics", view_func=metrics, methods=["GET"])
    return app


async def _start_timer() -> None:
    g.started = trio.current_time()


async def _check_ids() -> None:
    if ids_out_of_range(request.view_args):
        raise ApiError(404, "not_found", "no such resource")


async def _check_host() -> None:
    """A browser's request (it has an Origin or a cookie) must name this service in Host."""
    if "Origin" not in request.headers and "Cookie" not in request.headers:
        return
    server = request.scope.get("server")
    port = server[1] if server else None
    if not host_allowed(request.host, port, context().settings):
        security_event("host_refused", address=request.remote_addr, host=request.host[:100])
        raise ApiError(403, "forbidden_host", "this service does not answer to that host name")


async def _finish(response: Response) -> Response:
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    started = getattr(g, "started", None)
    if started is not None:
        elapsed = trio.current_time() - started
        context().metrics.observe(rule, request.method, response.status_code, elapsed)
    security_headers(response.headers, request.path, request.host)
    return response


@hide
async def index() -> Response:
    """The orders page."""
    response = await context_app().send_static_file("index.html")
    response.headers["Cache-Control"] = "no-cache"
    return response


@hide
async def docs() -> Response:
    """Swagger UI for /openapi.json, from the package's own copy (works offline)."""
    response = await context_app().send_static_file("docs.html")
    response.headers["Cache-Control"] = "no-cache"
    return response


def context_app() -> QuartTrio:
    from quart import current_app

    app: QuartTrio = current_app._get_current_object()  # type: ignore[attr-defined]
    return app


async def healthz() -> Response:
    """The process answers."""
    return json_response({"status": "ok"})


async def readyz() -> Response:
    """Ready when the database answers within 2 s (a hung one included: the probe is left
    behind, not waited for) and the actors' supervisor runs."""
    ctx = context()
    problems = []
    with trio.move_on_after(READY_TIMEOUT) as scope:
        try:
            await ctx.store.db.probe()
        except Exception as error:  # reported, not raised: this route exists to say so
            problems.append(f"the database failed its check ({type(error).__name__})")
    if scope.cancelled_caught:
        problems.append(f"the database did not answer within {READY_TIMEOUT:g} s")
    if not ctx.ready():
        problems.append("the actors are not running yet")
    if problems:
        return error_response(503, "not_ready", "Not ready: " + "; ".join(problems) + ".")
    return json_response({"status": "ready"})


@hide
async def metrics() -> Response:
    """Prometheus text format: for operators' tokens, or anyone on ``--metrics-address``."""
    ctx = context()
    server = request.scope.get("server")
    if ctx.metrics_port is None or server is None or server[1] != ctx.metrics_port:
        try:
            await auth.authenticate(operator=True)
        except ApiError as error:
            security_event("metrics_refused", address=request.remote_addr, status=error.status)
            raise
    return Response(ctx.metrics.render(), 200, content_type="text/plain; version=0.0.4")
