"""What a person opens in a browser: the live page at `/`, the API docs at `/docs` (Swagger UI) and
`/redoc` (ReDoc), and their static assets under `/static`.

Everything is served from the installed package (`api/static/`, shipped as package data); no page loads
anything from another host. Third-party assets live in `api/static/vendor/` with their licences; their
versions are in `api/static/vendor/VERSIONS` and `scripts/vendor-web-assets.sh` refreshes them.
"""

from __future__ import annotations

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


def _local_only(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def install_web(app: FastAPI) -> APIRouter:
    """Mount the static assets and add `/`, `/docs` and `/redoc` (create the app with docs_url=None and
    redoc_url=None so that FastAPI's CDN-backed pages are not added). Returns the router added."""
    app.mount(STATIC_PREFIX, StaticFiles(packages=[("api", "static")]), name="static")
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    async def live_page() -> HTMLResponse:
        """Feeds, trades/s and a live candlestick chart (api/static/index.html, app.js, app.css)."""
        return _local_only(HTMLResponse(_page("index.html")))

    @router.get("/docs", response_class=HTMLResponse)
    async def swagger_ui() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{title} - Swagger UI",
                swagger_js_url=SWAGGER_JS,
                swagger_css_url=SWAGGER_CSS,
                swagger_favicon_url=FAVICON,
                oauth2_redirect_url=OAUTH2_REDIRECT,
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @router.get(OAUTH2_REDIRECT, response_class=HTMLResponse)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc", response_class=HTMLResponse)
    async def redoc() -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=REDOC_JS,
                redoc_favicon_url=FAVICON,
                with_google_fonts=False,
            )
        )

    app.include_router(router)
    return router
