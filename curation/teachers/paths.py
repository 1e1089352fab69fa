"""Where Distillery keeps large files (models, downloads): outside git, env-driven."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The data dir by the settings' rule, for code run without Django (``python -m``, bench scripts).

    ``$DISTILLERY_DATA_DIR``, else ``data`` under ``$DISTILLERY_VAR_DIR``, else ``var/data`` in the repo.
    """
    if configured := os.environ.get("DISTILLERY_DATA_DIR"):
        return Path(configured).resolve()
    return (Path(os.environ.get("DISTILLERY_VAR_DIR", REPO_ROOT / "var")) / "data").resolve()
