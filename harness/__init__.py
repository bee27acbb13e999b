"""scramblebench core: registries, data, keys, metrics, training and the benchmark runner."""

from harness.registry import create_cipher

__all__ = ["create_cipher"]
