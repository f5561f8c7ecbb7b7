"""Where the lab lives and what it exported: the one place every part (tests, demo, DAG config) reads it from.

The lab writes ``<lab>/env.json`` on ``ovirt-dr-lab up``; tests and the demo load it with :func:`load_lab_env`
instead of sourcing ``env.sh`` so that a lab that is not up fails with a message saying what to run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV_VAR = "OVIRT_DR_LAB_DIR"


class LabNotUpError(RuntimeError):
    """The lab's env.json is missing or unreadable: ``ovirt-dr-lab up`` has not run (or ``down`` has)."""


def repo_root() -> Path:
    """The directory holding pyproject.toml above this file (editable install), else the current directory.

    The lab dir defaults to ``<repo root>/.lab`` so that every process of one checkout finds the same lab
    whatever its working directory.
    """
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def lab_dir() -> Path:
    """``$OVIRT_DR_LAB_DIR`` or ``<repo root>/.lab`` (absolute)."""
    value = os.environ.get(ENV_VAR)
    return Path(value).resolve() if value else repo_root() / ".lab"


def load_lab_env(path: Path | None = None) -> dict[str, str]:
    """Read ``<lab>/env.json`` (the same keys ``env.sh`` exports) and return it as ``{name: value}``.

    Raises :class:`LabNotUpError` naming the file and the command to run when the lab is not up, so a test
    run without a lab fails loudly instead of skipping.
    """
    env_file = path or lab_dir() / "env.json"
    try:
        data = json.loads(env_file.read_text())
    except FileNotFoundError:
        raise LabNotUpError(
            f"lab is not up: {env_file} does not exist; run `ovirt-dr-lab up` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise LabNotUpError(f"lab env {env_file} is unreadable ({exc}); run `ovirt-dr-lab up` again") from exc
    if not isinstance(data, dict):
        raise LabNotUpError(f"lab env {env_file} is not a JSON object; run `ovirt-dr-lab up` again")
    return {str(k): str(v) for k, v in data.items()}
