"""The OpenAPI document, completed so that a client can check every parameter before sending it.

FastAPI describes each query parameter from its declaration (`api.deps`). Two things it cannot know are
filled in here: the limits and defaults that come from `ApiSettings` (a parameter names them with the
`SETTING_MAXIMUM` / `SETTING_DEFAULT` markers, replaced by the settings' values), and that a query string
cannot carry null (an optional parameter is described as its type alone, `{"type": "integer", ...}`,
not `anyOf [integer, null]`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.settings import ApiSettings

SETTING_DEFAULT = "x-setting-default"  # the value of this ApiSettings field is the parameter's default
SETTING_MAXIMUM = "x-setting-maximum"  # ... its maximum

_KEPT_FROM_WRAPPER = ("title", "description", "default", "examples", "pattern", "minimum")


def install_openapi(app: FastAPI, settings: ApiSettings) -> None:
    """Make `app.openapi()` (and /openapi.json) return the completed document, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            complete_parameters(document, settings)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete_parameters(document: dict[str, Any], settings: ApiSettings) -> None:
    """Every operation's parameters: optional ones as their type alone, settings markers resolved."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = _without_null(parameter["schema"])
                _resolve_settings(schema, settings)
                parameter["schema"] = schema


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`{"anyOf": [X, {"type": "null"}], ...}` -> X with the wrapper's annotations."""
    variants = schema.get("anyOf")
    if not variants:
        return schema
    kept = [v for v in variants if v.get("type") != "null"]
    if len(kept) != 1:
        return schema
    merged = dict(kept[0])
    for key in _KEPT_FROM_WRAPPER:
        if key in schema:
            merged.setdefault(key, schema[key])
    for key, value in schema.items():
        if key.startswith("x-"):
            merged[key] = value
    return merged


def _resolve_settings(schema: dict[str, Any], settings: ApiSettings) -> None:
    for marker, keyword in ((SETTING_DEFAULT, "default"), (SETTING_MAXIMUM, "maximum")):
        field = schema.pop(marker, None)
        if field is not None:
            schema[keyword] = getattr(settings, field)
