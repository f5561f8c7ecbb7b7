"""The engine's search grammar, as far as the oVirt clients use it.

``field op value`` clauses joined by ``and`` / ``or`` (``and`` binds tighter), ops ``= != < >``, ``*``
wildcards, double-quoted values, then optional ``sortby field [asc|desc]`` and ``page N``. Matching is
case-insensitive unless ``case_sensitive=true`` is passed, like the engine. Each collection supplies a
function that returns the values of a field for an item (a list, because ``storage.name`` of a VM has one
value per disk domain); a clause is true when any value matches.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import Any

FieldGetter = Callable[[dict[str, Any], str], list[Any] | None]

_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|(!=|<=|>=|=|<|>)|([^\s=!<>"]+))')


class SearchError(ValueError):
    """A search the engine would refuse (answered as a 400 fault)."""


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SearchError(f"cannot parse search near {text[pos:]!r}")
        pos = m.end()
        if m.group(1) is not None:
            tokens.append(("str", m.group(1).replace('\\"', '"')))
        elif m.group(2) is not None:
            tokens.append(("op", m.group(2)))
        else:
            tokens.append(("word", m.group(3)))
    return tokens


def parse(text: str) -> tuple[list[list[tuple[str, str, str]]], tuple[str, bool] | None, int | None]:
    """Split a search into OR-groups of AND-clauses, plus the sort and page directives."""
    tokens = _tokenize(text)
    groups: list[list[tuple[str, str, str]]] = [[]]
    sort: tuple[str, bool] | None = None
    page: int | None = None
    i = 0
    # A leading "Vms:" style prefix is accepted and ignored.
    if tokens and tokens[0][0] == "word" and tokens[0][1].endswith(":"):
        i = 1
    while i < len(tokens):
        kind, val = tokens[i]
        low = val.lower()
        if kind == "word" and low == "and":
            i += 1
            continue
        if kind == "word" and low == "or":
            groups.append([])
            i += 1
            continue
        if kind == "word" and low == "sortby":
            if i + 1 >= len(tokens):
                raise SearchError("sortby needs a field")
            field = tokens[i + 1][1]
            desc = False
            i += 2
            if i < len(tokens) and tokens[i][1].lower() in {"asc", "desc"}:
                desc = tokens[i][1].lower() == "desc"
                i += 1
            sort = (field, desc)
            continue
        if kind == "word" and low == "page":
            if i + 1 >= len(tokens) or not tokens[i + 1][1].isdigit():
                raise SearchError("page needs a number")
            page = int(tokens[i + 1][1])
            i += 2
            continue
        if i + 1 >= len(tokens) or tokens[i + 1][0] != "op":
            raise SearchError(f"expected 'field op value' at {val!r}")
        if i + 2 >= len(tokens):
            raise SearchError(f"missing value after {val} {tokens[i + 1][1]}")
        groups[-1].append((val, tokens[i + 1][1], tokens[i + 2][1]))
        i += 3
    groups = [g for g in groups if g]
    return groups, sort, page


def _as_number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _match(values: list[Any], op: str, pattern: str, case_sensitive: bool) -> bool:
    if op in {"=", "!="}:
        pat = pattern if case_sensitive else pattern.lower()
        hit = False
        for v in values:
            s = "" if v is None else str(v)
            s = s if case_sensitive else s.lower()
            if ("*" in pat and fnmatch.fnmatchcase(s, pat)) or s == pat:
                hit = True
                break
        return hit if op == "=" else not hit
    num = _as_number(pattern)
    for v in values:
        nv = _as_number(v)
        if num is not None and nv is not None:
            a, b = nv, num
        else:
            a, b = str(v), pattern
        if (
            (op == "<" and a < b)
            or (op == ">" and a > b)
            or (op == "<=" and a <= b)
            or (op == ">=" and a >= b)
        ):
            return True
    return False


def apply(
    items: Iterable[dict[str, Any]],
    text: str | None,
    getter: FieldGetter,
    case_sensitive: bool = False,
    page_size: int | None = None,
) -> list[dict[str, Any]]:
    """Filter, sort and page ``items``; an unknown field raises :class:`SearchError`."""
    items = list(items)
    if not text or not text.strip():
        return items
    groups, sort, page = parse(text)

    def values(item: dict[str, Any], field: str) -> list[Any]:
        got = getter(item, field.lower())
        if got is None:
            raise SearchError(f"unknown search field {field!r}")
        return got

    def keep(item: dict[str, Any]) -> bool:
        if not groups:
            return True
        return any(all(_match(values(item, f), op, v, case_sensitive) for f, op, v in g) for g in groups)

    out = [item for item in items if keep(item)]
    if sort:
        field, desc = sort

        def key(item: dict[str, Any]) -> tuple[int, Any]:
            vals = values(item, field)
            v = vals[0] if vals else ""
            n = _as_number(v)
            return (0, n) if n is not None else (1, str(v).lower())

        out.sort(key=key, reverse=desc)
    if page is not None and page_size:
        out = out[(page - 1) * page_size : page * page_size]
    return out
