"""The engine emulator's search grammar (pure function, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from ovirt_dr_lab.engine import search

ITEMS = [
    {"name": "vm01", "status": "up", "sds": ["data"], "n": 3},
    {"name": "vm02", "status": "down", "sds": ["data", "other"], "n": 10},
    {"name": "web", "status": "up", "sds": [], "n": 2},
]


def getter(item: dict[str, Any], field: str) -> list[Any] | None:
    return {
        "name": [item["name"]],
        "status": [item["status"]],
        "storage.name": item["sds"],
        "storage": item["sds"],
        "n": [item["n"]],
    }.get(field)


def names(text: str | None, **kw: Any) -> list[str]:
    return [i["name"] for i in search.apply(ITEMS, text, getter, **kw)]


def test_empty_search_keeps_everything() -> None:
    assert names(None) == names("") == ["vm01", "vm02", "web"]


def test_and_binds_tighter_than_or() -> None:
    assert names("status=up and name=vm* or name=vm02") == ["vm01", "vm02"]
    assert names("storage.name=data and status=up") == ["vm01"]


def test_quoted_values_wildcards_and_case() -> None:
    assert names('storage="other"') == ["vm02"]
    assert names("name=VM0*") == ["vm01", "vm02"]
    assert names("name=VM0*", case_sensitive=True) == []
    assert names("name!=vm*") == ["web"]


def test_numeric_comparison_sort_and_page() -> None:
    assert names("n>2") == ["vm01", "vm02"]
    assert names("n<3") == ["web"]
    assert names("name=* sortby n desc") == ["vm02", "vm01", "web"]
    assert names("name=* sortby name desc page 2", page_size=2) == ["vm01"]


def test_prefix_is_ignored() -> None:
    assert names("Vms: name=web") == ["web"]


@pytest.mark.parametrize("bad", ["name=", "name", "unknown=x", "sortby", "page x"])
def test_bad_searches_raise(bad: str) -> None:
    with pytest.raises(search.SearchError):
        names(bad)
