"""Every error leaves the server in Jina's shape: ``{"detail", "code", "request_id"}``.

Clients (LangChain, LlamaIndex) only read ``detail``, so it always says what to fix; ``code`` follows
Jina's names (``INPUT_MODEL_NOT_FOUND``, ``AUTH_INVALID_API_KEY``, ...).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class APIError(Exception):
    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return " -> ".join(parts) or "body"


async def handle_api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, APIError)
    body = {"detail": error.detail, "code": error.code, "request_id": request_id(request)}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def handle_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = []
    for item in error.errors():
        errors.append(
            {
                "field": _location(tuple(item.get("loc", ()))),
                "message": item.get("msg", ""),
                "type": item.get("type", ""),
            }
        )
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    body = {
        "detail": f"Validation error: {summary}",
        "code": "VALIDATION_ERROR",
        "request_id": request_id(request),
        "errors": errors,
    }
    return JSONResponse(body, status_code=422)


async def handle_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    codes = {404: "RESOURCE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
    body = {
        "detail": str(error.detail),
        "code": codes.get(error.status_code, "HTTP_ERROR"),
        "request_id": request_id(request),
    }
    return JSONResponse(body, status_code=error.status_code, headers=getattr(error, "headers", None))


async def handle_unexpected(request: Request, error: Exception) -> JSONResponse:
    import logging

    logging.getLogger("polycolbert.server").exception(
        "unexpected error", extra={"request_id": request_id(request)}
    )
    body = {
        "detail": "Internal error; the request id identifies it in the server log.",
        "code": "INTERNAL_ERROR",
        "request_id": request_id(request),
    }
    return JSONResponse(body, status_code=500)
