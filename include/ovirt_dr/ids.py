"""oVirt ids as the product trusts them: lowercase UUIDs, checked before one goes into a path or a URL."""

from __future__ import annotations

import re
from typing import Any

#: A lowercase UUID as oVirt writes ids. ``\Z``: ``$`` would accept a trailing newline.
UUID_RE = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
#: The id oVirt writes for "none" (no parent volume, no template).
NULL_UUID = "00000000-0000-0000-0000-000000000000"


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and UUID_RE.match(value) is not None


__all__ = ["NULL_UUID", "UUID_RE", "is_uuid"]
