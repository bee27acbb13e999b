"""Real photographs the quick preset never uses, for testing attacks away from its images.

``natural`` crops ten photographs of scikit-image and scikit-learn; these come from other
sources that ship with installed packages: matplotlib's portrait of Grace Hopper, and the right
view of scikit-image's stereo motorcycle pair (a different camera position from the left view
that ``natural`` uses, with its own occlusions and lighting).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch

SOURCES = ("grace_hopper", "motorcycle_right")


@functools.lru_cache(maxsize=None)
def _photograph(name: str) -> np.ndarray:
    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            data = np.frombuffer(handle.read(), dtype=np.uint8)
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if name == "motorcycle_right":
        from skimage import data as skdata

        return skdata.stereo_motorcycle()[1]
    raise ValueError(f"unknown photograph {name!r}; choose from {SOURCES}")


def other_photographs(n: int, size: int = 32, seed: int = 0, sources: tuple[str, ...] = SOURCES) -> torch.Tensor:
    """``n`` seeded square crops (35-100% of the short side) resized to ``size``: uint8 ``[n, 3, size, size]``."""
    generator = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for index in range(n):
        photo = _photograph(sources[index % len(sources)])
        short = min(photo.shape[:2])
        side = int(generator.uniform(0.35, 1.0) * short)
        top = int(generator.integers(0, photo.shape[0] - side + 1))
        left = int(generator.integers(0, photo.shape[1] - side + 1))
        crop = photo[top : top + side, left : left + side]
        images[index] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
