"""Checks of values that would otherwise fail late: URLs and Kafka topic names.

Each message names the value's flag and environment variable, so the fix is one line away.
The sections' common base lives here too: unknown keys refused, values frozen.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A settings section: an unknown key is an error (a typo), and it never changes once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Kafka's own rule for topic names (kafka.common.internals.Topic).
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def where(section: str, field: str, flag: str | None = None) -> str:
    """How a setting is given: its flag (if any) and its environment variable."""
    env = f"EVALSTREAM_{section}__{field}".upper()
    return f"{flag} or {env}" if flag else env


def http_url(value: str, source: str) -> str:
    """``value`` if it is an http(s) URL with a host and a valid port.

    Raises:
        ValueError: it is not, naming ``source``.
    """
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(
            f"{value!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:8000 "
            f"(set by {source})"
        )
    return value


def topic_name(value: str, source: str) -> str:
    """``value`` if Kafka accepts it as a topic name.

    Raises:
        ValueError: it does not, naming ``source``.
    """
    if not _TOPIC.fullmatch(value) or value in (".", ".."):
        raise ValueError(
            f"{value!r} is not a Kafka topic name: 1 to 249 of a-z A-Z 0-9 . _ - (set by {source})"
        )
    return value
