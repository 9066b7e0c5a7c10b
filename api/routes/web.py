"""What a person opens in a browser: the live page at `/`, the API docs at `/docs` (Swagger UI) and
`/redoc` (ReDoc), and their static assets under `/static`.

Everything is served from the installed package (`api/static/`, shipped as package data); no page loads
anything from another host. Third-party assets live in `api/static/vendor/` with their licences; their
versions are in `api/static/vendor/VERSIONS` and `scripts/vendor-web-assets.sh` refreshes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_PREFIX = "/static"
VENDOR = f"{STATIC_PREFIX}/vendor"
SWAGGER_JS = f"{VENDOR}/swagger-ui-dist/swagger-ui-bundle.js"
SWAGGER_CSS = f"{VENDOR}/swagger-ui-dist/swagger-ui.css"
FAVICON = f"{VENDOR}/swagger-ui-dist/favicon-32x32.png"
REDOC_JS = f"{VENDOR}/redoc/redoc.standalone.js"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# The browser itself keeps every page on this server: ReDoc's bundle, for one, would fetch its logo from a
# CDN. Inline scripts and styles are Swagger UI's and ReDoc's own; ReDoc runs a worker from a blob.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'self'"
)


def _page(name: str) -> str:
    return resources.files("api").joinpath("static", name).read_text(encoding="utf-8")


def _endpoint(body: bytes) -> Callable[[], Awaitable[HTMLResponse]]:
    async def page() -> HTMLResponse:
        return HTMLResponse(body, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    return page


def install_web(app: FastAPI) -> APIRouter:
    """Mount the static assets and add `/`, `/docs` and `/redoc` (create the app with docs_url=None and
    redoc_url=None so that FastAPI's CDN-backed pages are not added). Returns the router added."""
    app.mount(STATIC_PREFIX, StaticFiles(packages=[("api", "static")]), name="static")
    openapi_url = app.openapi_url or "/openapi.json"
    pages = {
        "/": HTMLResponse(_page("index.html")),  # feeds, trades/s and a live candlestick chart
        "/docs": get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=SWAGGER_JS,
            swagger_css_url=SWAGGER_CSS,
            swagger_favicon_url=FAVICON,
            oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_ui_parameters={"validatorUrl": None},
        ),
        OAUTH2_REDIRECT: get_swagger_ui_oauth2_redirect_html(),
        "/redoc": get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=REDOC_JS,
            redoc_favicon_url=FAVICON,
            with_google_fonts=False,
        ),
    }
    router = APIRouter(include_in_schema=False)
    for path, response in pages.items():
        router.add_api_route(
            path, _endpoint(bytes(response.body)), methods=["GET"], response_class=HTMLResponse
        )
    app.include_router(router)
    return router
