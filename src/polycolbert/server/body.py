"""Reading request bodies: size limit, UTF-8 check, JSON that tolerates ``#`` comments, schema validation.

Jina's release note shows curl bodies with ``# ...`` remarks after values (``"dimensions": 128, # or 64``).
Strict JSON rejects them; we accept them (outside strings only) so those commands work unchanged,
and otherwise keep JSON strict: ``NaN``/``Infinity`` literals (which Python's parser accepts) are refused
with the path of the field that holds one, since no store or client can round-trip them.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from polycolbert.server.errors import APIError

MAX_BODY_BYTES = 16 * 1024 * 1024


def strip_hash_comments(text: str) -> str:
    """Remove ``#`` to end of line wherever it is not inside a JSON string.

    >>> strip_hash_comments('{"a": 1, # note\\n"b": "x#y"}')
    '{"a": 1, \\n"b": "x#y"}'
    """
    out, in_string, escaped, skipping = [], False, False, False
    for char in text:
        if skipping:
            if char == "\n":
                skipping = False
                out.append(char)
            continue
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == "#":
            skipping = True
            continue
        if char == '"':
            in_string = True
        out.append(char)
    return "".join(out)


def parse_body(raw: bytes) -> Any:
    """Decode and parse a request body; every way it can be malformed is a 400/413 that says how."""
    if len(raw) > MAX_BODY_BYTES:
        raise APIError(
            413, "PAYLOAD_TOO_LARGE", f"Request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise APIError(400, "INVALID_UTF8", f"Request body is not valid UTF-8 (byte {error.start})") from None
    if not text.strip():
        raise APIError(400, "INVALID_JSON", "Request body is empty; send a JSON object")
    try:
        payload = _loads(text)
    except RecursionError:
        raise APIError(400, "INVALID_JSON", "Request body nests JSON too deeply") from None
    except json.JSONDecodeError as error:
        raise APIError(
            400,
            "INVALID_JSON",
            f"Request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}",
        ) from None
    except ValueError as error:  # e.g. an integer literal longer than Python converts (4300 digits)
        raise APIError(400, "INVALID_JSON", f"Request body is not valid JSON: {error}") from None
    if "\\u" in text:  # only escapes can smuggle in an unpaired surrogate (not valid Unicode text)
        _check_unicode(payload)
    if "NaN" in text or "Infinity" in text or "e" in text or "E" in text:  # 1e999 parses as inf too
        where = non_finite_path(payload)
        if where is not None:
            raise APIError(
                400, "INVALID_JSON", f"{where}: NaN and Infinity are not JSON numbers; send a number or null"
            )
    return payload


def non_finite_path(payload: Any, path: str = "body") -> str | None:
    """Where the first NaN/Infinity literal sits in parsed JSON (``input[2].score``), or None.

    >>> non_finite_path({"input": ["a", {"score": float("nan")}]})
    'input[1].score'
    """
    stack: list[tuple[str, Any]] = [("", payload)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return where or path
        if isinstance(item, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(item))
    return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as strict_error:
        try:
            return json.loads(strip_hash_comments(text))
        except json.JSONDecodeError:
            raise strict_error from None


def _check_unicode(payload: Any) -> None:
    """Refuse strings with unpaired surrogates (``"\\ud800"``): no tokenizer can encode them."""
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as error:
                raise APIError(
                    400,
                    "INVALID_UTF8",
                    f"Request body has a string with an unpaired surrogate escape "
                    f"(\\u{ord(item[error.start]):04x}); send valid Unicode text",
                ) from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


async def read_limited(request: Any, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` (never buffered whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, "PAYLOAD_TOO_LARGE", f"Request body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(
                413, "PAYLOAD_TOO_LARGE", f"Request body is over {limit} bytes; the limit is {limit}"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def read_request(request: Any, schema: type[BaseModel]) -> Any:
    """Parse (size, UTF-8, lenient JSON) and validate; validation errors become 422 in Jina's shape."""
    payload = parse_body(await read_limited(request))
    try:
        return schema.model_validate(payload)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from None
