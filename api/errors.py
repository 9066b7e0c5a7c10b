"""API error types and the one JSON error shape every failure is answered with:

    {"error": {"code": "invalid_parameter", "message": "limit: ...", "parameter": "limit",
               "request_id": "..."}}

Bad input gets a 4xx naming the parameter; a failing store gets 503; anything unexpected gets a 500
(produced by `api.middleware.RequestContextMiddleware`, which also logs the traceback).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope, Send

from core.errors import CircuitOpenError, PlatformError, StorageError

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 429: "rate_limited"}
_MAX_INPUT_ECHO = 60


class ApiError(PlatformError):
    """A request the API refuses on purpose: `status` is the HTTP status, `code` a short stable label,
    `parameter` the query parameter at fault (None when no single one is)."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter


class InvalidParameter(ApiError):
    """A query parameter that cannot be used; the message starts with the parameter's name."""

    status = 422
    code = "invalid_parameter"

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}", parameter=parameter)


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Unavailable(ApiError):
    """Something this API instance was not given (e.g. no feed board): 503."""

    status = 503
    code = "unavailable"


def request_id_of(scope: Scope) -> str | None:
    """The id `RequestContextMiddleware` gave this request (None outside it)."""
    state = scope.get("state")
    return state.get("request_id") if isinstance(state, Mapping) else None


def error_payload(
    code: str, message: str, *, request_id: str | None, parameter: str | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        error["parameter"] = parameter
    error["request_id"] = request_id
    return {"error": error}


def error_bytes(code: str, message: str, *, request_id: str | None) -> bytes:
    """The error shape as bytes, for pure ASGI code that answers without a Response class."""
    return json.dumps(error_payload(code, message, request_id=request_id)).encode()


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    request_id: str | None,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with the error shape from pure ASGI middleware (before or instead of the application)."""
    body = error_bytes(code, message, request_id=request_id)
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*start, *headers]})
    await send({"type": "http.response.body", "body": body})


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    parameter: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    payload = error_payload(code, message, request_id=request_id_of(request.scope), parameter=parameter)
    return JSONResponse(payload, status_code=status, headers=dict(headers or {}))


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    logger.info("{} {} refused: {}", request.method, request.url.path, exc.message)
    return error_response(request, exc.status, exc.code, exc.message, parameter=exc.parameter)


def _describe_input(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_INPUT_ECHO else text[: _MAX_INPUT_ECHO - 3] + "..."


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(part) for part in first.get("loc", ())]
    parameter = loc[-1] if loc else "request"
    message = f"{parameter}: {first.get('msg', 'invalid value')}"
    if first.get("type") != "missing" and "input" in first:
        message += f" (got {_describe_input(first['input'])})"
    logger.info("{} {} refused: {}", request.method, request.url.path, message)
    return error_response(request, 422, "invalid_parameter", message, parameter=parameter)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(request, exc.status_code, code, message, headers=exc.headers)


async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(exc, CircuitOpenError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_in)))
    logger.warning("{} {} failed: storage unavailable: {}", request.method, request.url.path, exc)
    message = f"storage is unavailable, try again later ({type(exc).__name__})"
    return error_response(request, 503, "storage_unavailable", message, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StorageError, _storage_error)
    app.add_exception_handler(CircuitOpenError, _storage_error)
