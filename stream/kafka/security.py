"""SASL / TLS settings passed through to the Kafka client, and their masked form for logs.

A ``security`` mapping holds kafka-python client settings such as ``security_protocol``
(``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``), ``sasl_mechanism``
(``PLAIN``, ``SCRAM-SHA-256``, ...), ``sasl_plain_username``, ``sasl_plain_password``,
``ssl_cafile``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_password``. Only these keys are
accepted, so a typo is an error instead of a silently insecure connection. Secrets never
reach a log line or a ``repr``: use :func:`masked_security`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SECRET_KEYS", "SECURITY_KEYS", "client_security", "masked_security"]

SECURITY_KEYS = frozenset(
    {
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_crlfile",
        "ssl_ciphers",
        "ssl_check_hostname",
        "ssl_context",
    }
)
SECRET_KEYS = frozenset({"sasl_plain_password", "ssl_password", "sasl_oauth_token_provider"})
_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def client_security(security: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate a security mapping and return the client keyword arguments.

    Args:
        security: kafka-python security settings, or ``None`` for plaintext.

    Returns:
        A new dict to pass as keyword arguments to a kafka-python client.

    Raises:
        ValueError: an unknown key (names it and the accepted keys) or protocol.

    Example:
        >>> client_security({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"})
        {'security_protocol': 'SASL_SSL', 'sasl_mechanism': 'PLAIN'}
    """
    settings = dict(security or {})
    unknown = sorted(set(settings) - SECURITY_KEYS)
    if unknown:
        msg = f"unknown Kafka security setting(s) {unknown}; accepted: {sorted(SECURITY_KEYS)}"
        raise ValueError(msg)
    protocol = settings.get("security_protocol")
    if protocol is not None and protocol not in _PROTOCOLS:
        msg = f"security_protocol {protocol!r} is not one of {list(_PROTOCOLS)}"
        raise ValueError(msg)
    return settings


def masked_security(security: Mapping[str, Any] | None) -> dict[str, Any]:
    """Copy of ``security`` with every secret replaced by ``"***"`` (for logs and reprs).

    Example:
        >>> masked_security({"sasl_plain_username": "u", "sasl_plain_password": "p"})
        {'sasl_plain_username': 'u', 'sasl_plain_password': '***'}
    """
    return {
        key: ("***" if key in SECRET_KEYS and value is not None else value)
        for key, value in (security or {}).items()
    }
