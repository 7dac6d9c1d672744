"""The shipped models in ``models/<name>/``: what each was trained on and how it scored."""

from __future__ import annotations

import json
from pathlib import Path

from emorec.config import MODELS_DIR


def training_stats(models_dir: Path = MODELS_DIR) -> dict[str, dict]:
    """The dataset statistics saved beside each trained model (``data_stats.json``), by model name."""
    stats = {}
    for path in sorted(models_dir.glob("*/data_stats.json")):
        try:
            stats[path.parent.name] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
    return stats
