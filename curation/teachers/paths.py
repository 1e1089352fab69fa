"""Where Distillery keeps large files (models, downloads): outside git, env-driven."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """``$DISTILLERY_DATA_DIR`` or ``var/data`` under the repo root (the same rule as settings)."""
    configured = os.environ.get("DISTILLERY_DATA_DIR")
    path = Path(configured) if configured else REPO_ROOT / "var" / "data"
    return path if path.is_absolute() else REPO_ROOT / path
