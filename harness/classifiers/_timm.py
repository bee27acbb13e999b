"""Create timm models with optional pretrained weights from a local file or, if asked, a download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import get_pretrained_cfg, load_state_dict


def create_timm_model(
    name: str, *, weights_file: str | None, pretrained: bool, num_classes: int, **kwargs: Any
) -> torch.nn.Module:
    """``timm.create_model(name, ...)`` with weights from ``weights_file`` or timm's download.

    Nothing is downloaded unless ``pretrained`` is true and no ``weights_file`` is given.  A
    file's classifier head is loaded only when it has ``num_classes`` rows (fine-tuning to a new
    label set re-initialises it, as timm does for its own weights).
    """
    if weights_file is None:
        return timm.create_model(name, pretrained=bool(pretrained), num_classes=num_classes, **kwargs)
    path = Path(weights_file)
    if not path.is_file():
        raise ValueError(f"weights_file {str(path)!r} does not exist or is not a file")
    overlay = {"file": str(path), "num_classes": _head_rows(path, name)}
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=num_classes, **kwargs)


def _head_rows(path: Path, name: str) -> int:
    """Rows of the classifier weight stored in ``path`` (0 when the file has no head)."""
    cfg = get_pretrained_cfg(name.split(".")[0])
    head = (cfg.classifier if cfg is not None else None) or "head"
    state = load_state_dict(str(path), weights_only=True)
    weight = state.get(f"{head}.weight")
    return int(weight.shape[0]) if weight is not None else 0
