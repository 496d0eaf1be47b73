"""Cross-site safety for a server that a browser can reach: Host, Origin and Content-Type checks.

A keyless server on 127.0.0.1 is reachable from any web page the user opens. Three rules keep such a page
from acting through it:

* **Host**: DNS rebinding points an attacker's name at 127.0.0.1, so the browser sends the attacker's name
  as ``Host``. Only loopback names, the address the server is bound to and ``--allowed-host`` names are
  answered (a wildcard bind, 0.0.0.0 or ::, requires API keys and answers any name).
* **Origin**: a browser names the page that sent a request. Same-origin requests (the playground at ``/``)
  and ``--allowed-origin`` pages are served; any other page is refused, ``Origin: null`` included.
* **Content-Type**: a page may send ``text/plain``, form or blob bodies without a CORS preflight, so a
  state-changing request with a body must say ``application/json``.

Every refusal is a 403 (or 415) that says which header was wrong and which option admits it.

>>> policy = SitePolicy(bound_host="127.0.0.1")
>>> policy.host_allowed("localhost:8000"), policy.host_allowed("evil.example:8000")
(True, False)
>>> policy.origin_allowed("http://127.0.0.1:8000", host="127.0.0.1:8000")
True
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from polycolbert.server.errors import APIError

WILDCARD_BINDS = ("0.0.0.0", "::", "")
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def is_loopback(host: str) -> bool:
    """``localhost`` or an address in 127.0.0.0/8 or ::1."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname(netloc: str) -> str | None:
    try:
        return urlsplit("//" + netloc).hostname
    except ValueError:
        return None


@dataclass(frozen=True)
class SitePolicy:
    """Which ``Host`` names and ``Origin`` pages the server answers; ``"*"`` in a list admits any."""

    bound_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()

    def host_allowed(self, host: str | None) -> bool:
        if "*" in self.allowed_hosts or self.bound_host in WILDCARD_BINDS:
            return True
        name = _hostname(host or "")
        if not name:
            return False
        allowed = {h.lower().strip("[]") for h in self.allowed_hosts} | {self.bound_host.lower().strip("[]")}
        return is_loopback(name) or name in allowed

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        origin = origin.strip().lower().rstrip("/")
        if "*" in self.allowed_origins or origin in {o.lower().rstrip("/") for o in self.allowed_origins}:
            return True
        parts = urlsplit(origin) if origin != "null" else None
        return bool(parts and parts.scheme in ("http", "https") and host and parts.netloc == host.lower())


def check_cross_site(method: str, headers: Mapping[str, str], policy: SitePolicy) -> None:
    """Raise a 403/415 ``APIError`` for a request a foreign page could have sent; pass everything else."""
    host = headers.get("host")
    if not policy.host_allowed(host):
        raise APIError(
            403,
            "HOST_NOT_ALLOWED",
            f"Host {host!r} is not served here (DNS rebinding guard); use a loopback address, or start "
            "the server with --allowed-host NAME",
        )
    origin = headers.get("origin")
    if origin is not None and not policy.origin_allowed(origin, host):
        raise APIError(
            403,
            "ORIGIN_NOT_ALLOWED",
            f"Origin {origin!r} may not call this server (cross-site request guard); start the server "
            "with --allowed-origin URL to admit that page",
        )
    if method.upper() in STATE_CHANGING and _has_body(headers):
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if not (kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))):
            raise APIError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"Content-Type {kind or 'missing'!r}: send JSON with 'Content-Type: application/json'",
            )


def _has_body(headers: Mapping[str, str]) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in headers
