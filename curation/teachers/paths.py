"""Where Distillery keeps large files (models, downloads): outside git, env-driven."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def in_data_dir(path: str | Path, root: Path | None = None) -> Path:
    """The one rule for a registered model path (a teacher's, a student folder's): absolute paths stand as they
    are, relative ones live in the data dir. Training, evaluation and generation all resolve through this."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (root or data_dir()) / candidate


def data_dir() -> Path:
    """The data dir by the settings' rule, for code run without Django (``python -m``, bench scripts).

    ``$DISTILLERY_DATA_DIR``, else ``data`` under ``$DISTILLERY_VAR_DIR``, else ``var/data`` in the repo.
    """
    if configured := os.environ.get("DISTILLERY_DATA_DIR"):
        return Path(configured).resolve()
    return (Path(os.environ.get("DISTILLERY_VAR_DIR", REPO_ROOT / "var")) / "data").resolve()
