"""Fixtures of the engine conformance suite: in-process emulated engines on tmp dirs, the real ovirtsdk4.

No Gluster is needed: the shipped site files are loaded with ``LAB_*`` pointing at tmp directories, so the
domain directory that a real lab keeps on the Gluster mount lives under ``tmp_path`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ovirtsdk4
import pytest

from ovirt_dr_lab.engine.server import EngineServer
from ovirt_dr_lab.engine.testing import connect, site_dict


@pytest.fixture
def lab_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    dirs = {"master": tmp_path / "gvmaster", "slave": tmp_path / "gvslave", "state": tmp_path / "state"}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setenv("LAB_MASTER_MOUNT", str(dirs["master"]))
    monkeypatch.setenv("LAB_SLAVE_MOUNT", str(dirs["slave"]))
    monkeypatch.setenv("LAB_GLUSTER_HOST", "gluster.lab")
    return dirs


@pytest.fixture
def start_engine(lab_dirs: dict[str, Path]) -> Iterator[Callable[..., EngineServer]]:
    started: list[EngineServer] = []

    def start(site: dict[str, Any] | Path, state_name: str) -> EngineServer:
        server = EngineServer(site, lab_dirs["state"] / state_name).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def primary(start_engine: Callable[..., EngineServer]) -> EngineServer:
    return start_engine(site_dict("primary"), "engine-primary")


@pytest.fixture
def secondary(start_engine: Callable[..., EngineServer]) -> EngineServer:
    return start_engine(site_dict("secondary"), "engine-secondary")


@pytest.fixture
def conn(primary: EngineServer) -> Iterator[ovirtsdk4.Connection]:
    c = connect(primary)
    yield c
    c.close()


@pytest.fixture
def sconn(secondary: EngineServer) -> Iterator[ovirtsdk4.Connection]:
    c = connect(secondary)
    yield c
    c.close()
