"""Reading request bodies: size limit, UTF-8 check, and JSON that tolerates ``#`` comments.

Jina's release note shows curl bodies with ``# ...`` remarks after values (``"dimensions": 128, # or 64``).
Strict JSON rejects them; we accept them (outside strings only) so those commands work unchanged,
and otherwise keep JSON strict.
"""

from __future__ import annotations

import json
from typing import Any

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
        return json.loads(text)
    except json.JSONDecodeError as strict_error:
        try:
            return json.loads(strip_hash_comments(text))
        except json.JSONDecodeError:
            raise APIError(
                400,
                "INVALID_JSON",
                f"Request body is not valid JSON: {strict_error.msg} at line {strict_error.lineno} "
                f"column {strict_error.colno}",
            ) from None
