"""Cleaning what a request says about itself into values the server accepts."""

from __future__ import annotations

import ipaddress

MAX_USER_AGENT = 1024


def client_ip(remote: str | None, forwarded_for: str | None, trust_forwarded: bool) -> str | None:
    """The client's address: the first `X-Forwarded-For` hop when the proxy is trusted, else
    the peer. Anything that is not an IP address (a test client's "testclient", a Unix
    socket) is left out rather than sent, since the server would refuse the whole event."""
    candidate = remote
    if trust_forwarded and forwarded_for:
        candidate = forwarded_for.split(",")[0].strip()
    if not candidate:
        return None
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def user_agent(value: str | None) -> str | None:
    """The user agent, cut to the server's limit and without NUL characters."""
    if not value:
        return None
    return value.replace("\x00", "")[:MAX_USER_AGENT] or None
