"""pytest fixtures of the Gluster unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gluster"


@pytest.fixture(params=sorted(p.name for p in _FIXTURES.glob("status-detail-*.xml")))
def status_fixture(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(name, XML) of every captured ``status detail --xml``."""
    return request.param, (_FIXTURES / request.param).read_text()
