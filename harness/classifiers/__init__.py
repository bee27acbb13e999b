"""Classifier plugins: one module per classifier; the registry reads every module here (and imports one when asked for its plugin)."""

from __future__ import annotations

from typing import Any

__all__ = ["keyed_vit"]


def __getattr__(name: str) -> Any:
    """Lazy ``keyed_vit`` export: importing the package must not import timm or the registry."""
    if name == "keyed_vit":
        from harness.classifiers.vit_keyed import keyed_vit

        return keyed_vit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
