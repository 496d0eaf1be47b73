"""Bearer-key authentication, compared in constant time against every configured key."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from polycolbert.server.errors import APIError


def load_keys(keys_file: str | Path | None = None) -> list[str]:
    """Keys from ``POLYCOLBERT_API_KEYS`` (comma-separated) and/or a file (one key per line, # comments)."""
    keys = [k.strip() for k in os.environ.get("POLYCOLBERT_API_KEYS", "").split(",") if k.strip()]
    if keys_file:
        lines = Path(keys_file).read_text(encoding="utf-8").splitlines()
        keys += [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    return keys


def check_authorization(header: str | None, keys: list[str]) -> None:
    if not keys:
        return
    if not header:
        raise APIError(
            401,
            "AUTH_MISSING_API_KEY",
            "Missing API key: send 'Authorization: Bearer <key>'",
            {"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(
            401,
            "AUTH_INVALID_FORMAT",
            "Authorization header must be 'Bearer <key>'",
            {"WWW-Authenticate": "Bearer"},
        )
    supplied = token.strip().encode()
    matched = False
    for key in keys:  # no early exit: time does not reveal which key (or how much of one) matched
        matched |= hmac.compare_digest(supplied, key.encode())
    if not matched:
        raise APIError(401, "AUTH_INVALID_API_KEY", "Invalid API key", {"WWW-Authenticate": "Bearer"})
