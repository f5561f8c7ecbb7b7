"""The trigger form's values, checked again when a task runs.

A run may come from the UI's form, the REST API or the CLI; only the form enforces the Params' schema, so
every recovery task reads its values through these two functions and a wrong type fails the task naming
the field, instead of being taken for true (``"false"`` is a truthy string).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def form_flag(params: Mapping[str, Any], key: str, default: bool) -> bool:
    """The boolean field ``key`` (``default`` when absent); anything but true/false is refused."""
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"param {key!r} must be true or false, got {value!r}")
    return value


def form_domains(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``domains`` field: a list of names (empty: all mapped ones), sorted and without repeats."""
    domains = params.get("domains") or []
    if not isinstance(domains, list | tuple) or not all(isinstance(d, str) for d in domains):
        raise ValueError(f"param 'domains' must be a list of domain names, got {domains!r}")
    return tuple(sorted(set(domains)))


__all__ = ["form_domains", "form_flag"]
