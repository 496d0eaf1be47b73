"""Every error leaves the server in Jina's shape: ``{"detail", "code", "request_id"}``.

Clients (LangChain, LlamaIndex) only read ``detail``, so it always says what to fix; ``code`` follows
Jina's names (``INPUT_MODEL_NOT_FOUND``, ``AUTH_INVALID_API_KEY``, ...). ``message`` repeats ``detail``
for the OpenAI SDK, which shows a body's ``message`` in its exception text.
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


def error_body(request: Request, code: str, detail: str) -> dict[str, Any]:
    return {"detail": detail, "code": code, "request_id": request_id(request), "message": detail}


async def handle_api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, APIError)
    body = error_body(request, error.code, error.detail)
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
    body = {**error_body(request, "VALIDATION_ERROR", f"Validation error: {summary}"), "errors": errors}
    return JSONResponse(body, status_code=422)


async def handle_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    codes = {404: "RESOURCE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
    body = error_body(request, codes.get(error.status_code, "HTTP_ERROR"), str(error.detail))
    return JSONResponse(body, status_code=error.status_code, headers=getattr(error, "headers", None))


async def handle_unexpected(request: Request, error: Exception) -> JSONResponse:
    import logging

    logging.getLogger("polycolbert.server").exception(
        "unexpected error", extra={"request_id": request_id(request)}
    )
    body = error_body(
        request, "INTERNAL_ERROR", "Internal error; the request id identifies it in the server log."
    )
    return JSONResponse(body, status_code=500)
