"""Whether the training loop runs a model through ``torch.compile`` (``TrainConfig.compile``).

``true`` compiles, ``false`` keeps eager mode, ``auto`` (the default) compiles on CUDA a model of at
least :data:`AUTO_MIN_PARAMETERS` parameters and nothing on the CPU.  Why: compiling costs a
fixed minute or so of graph capture and kernel generation per model, repaid only by a long,
compute-bound training (the paper's ViT-B/16 at 224, 86M parameters, and PyramidNet-110,
28M, train for hours); the quick preset's small networks train in seconds, where the compile
time would dominate; on the CPU compiling needs a C++ compiler and takes about a minute for even
a one-block ViT on two cores.  Compiling changes float rounding, never what is trained, so it is
not part of a trained model's cache key: a compiled and an eager run share the cached model.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

#: parameters from which ``compile: auto`` compiles on CUDA (ViT-B/16 and PyramidNet-110 are above, ResNet-18 below)
AUTO_MIN_PARAMETERS = 20_000_000

CompileSetting = bool | Literal["auto"]

_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False, "auto": "auto"}


def compile_setting(value: object) -> CompileSetting:
    """``value`` (a bool, ``"auto"`` or a YAML/CLI word such as ``"true"``) as True, False or ``"auto"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _WORDS:
        return _WORDS[value.strip().lower()]
    raise ValueError(f"compile must be true, false or auto, got {value!r}")


def wants_compile(setting: CompileSetting, model: nn.Module, device: torch.device) -> bool:
    """Whether the loop compiles ``model`` on ``device`` under ``setting`` (the ``auto`` rule above)."""
    if setting != "auto":
        return bool(setting)
    return device.type == "cuda" and sum(p.numel() for p in model.parameters()) >= AUTO_MIN_PARAMETERS


def for_training(model: nn.Module, compiled: bool) -> nn.Module:
    """What the loop calls: ``model`` itself, or a compiled wrapper sharing its parameters.

    The wrapper is used for the training steps only: ``model`` keeps its state-dict keys (the
    cache and checkpoints see no ``_orig_mod.`` prefix) and evaluates eagerly.
    """
    return torch.compile(model) if compiled else model
