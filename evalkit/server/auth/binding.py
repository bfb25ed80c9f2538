"""Whether a server needs tokens, from the address it listens on."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether ``host`` (as given to ``--host``) is reachable from this machine only."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def requires_auth(host: str, insecure_no_auth: bool = False) -> bool:
    """Tokens are required unless the server listens on loopback only, or the operator turned
    them off explicitly (``--insecure-no-auth``)."""
    return not insecure_no_auth and not is_loopback(host)
