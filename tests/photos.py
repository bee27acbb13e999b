"""Real photographs the quick preset never uses, for judging attacks away from its images.

``natural`` crops ten photographs of scikit-image and scikit-learn.  The statistical attacks must
hold on anyone's photographs, so tests and ``benchmarks/cross_source.py`` also draw from:

- ``other``: matplotlib's portrait of Grace Hopper and the right view of scikit-image's stereo
  motorcycle pair (a different camera position from the left view that ``natural`` uses); ship
  with the Python packages.
- ``opencv_samples``: varied object photographs (fruit, a baboon, a building, a butterfly, a
  football player, a squirrel, a circuit board, a street...) from OpenCV's sample data, Debian
  package ``opencv-doc`` (Apache-2.0 and BSD-3-Clause, /usr/share/doc/opencv-doc/copyright).
- ``mate_nature``: smooth nature close-ups (flowers, leaves, grass, a dune, a storm) from the
  MATE desktop's backgrounds, Debian package ``mate-backgrounds`` (GPL-2+, its copyright file
  names each photographer).
- ``plasma_photos``: landscape and scene photographs (a lake at dusk, boats, a forest path, moss,
  a beach, cups, a kite in the sky) from KDE Plasma's wallpapers, Debian package
  ``plasma-workspace-wallpapers`` (GPL-2+, KDE Visual Design Group).

The three Debian sources need ``apt-get install opencv-doc mate-backgrounds
plasma-workspace-wallpapers`` (only the slow cross-source tests and the benchmark script read
them); :func:`missing_sources` says which are absent.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import torch

_OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")
_MATE = Path("/usr/share/backgrounds/mate/nature")
_PLASMA = Path("/usr/share/wallpapers")

#: source -> (Debian package or None for Python packages, files)
_FILES: dict[str, tuple[str | None, tuple[Path, ...]]] = {
    "opencv_samples": ("opencv-doc", tuple(_OPENCV / f"{name}.jpg" for name in (
        "apple", "baboon", "building", "butterfly", "fruits", "home", "messi5", "orange", "squirrel_cls", "aloeL",
        "leuvenA", "board", "ela_original", "stuff"))),
    "mate_nature": ("mate-backgrounds", tuple(_MATE / f"{name}.jpg" for name in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm", "TwoWings",
        "Wood", "YellowFlower"))),
    "plasma_photos": ("plasma-workspace-wallpapers", tuple(_PLASMA / name / f"contents/images/{size}.jpg" for name, size in (
        ("BytheWater", "1920x1080"), ("ColdRipple", "1920x1080"), ("ColorfulCups", "2560x1600"), ("EveningGlow", "1920x1080"),
        ("FallenLeaf", "1920x1080"), ("Kite", "1920x1080"), ("OneStandsOut", "1920x1080"), ("Path", "1920x1080"),
        ("Shell", "720x1440"), ("summer_1am", "1920x1080")))),
}
#: the photo sources besides ``natural``, in the order tables list them
SOURCES = ("other", "opencv_samples", "mate_nature", "plasma_photos")


def missing_sources(sources: tuple[str, ...] = SOURCES) -> dict[str, str]:
    """Sources whose files are absent, with the Debian package that brings them."""
    missing = {}
    for source in sources:
        if source in _FILES:
            package, files = _FILES[source]
            if not all(path.is_file() for path in files):
                missing[source] = f"apt-get install {package}"
    return missing


@functools.lru_cache(maxsize=None)
def _photographs(source: str) -> tuple[np.ndarray, ...]:
    """The source's photographs, RGB uint8 HWC."""
    if source == "other":
        from matplotlib import cbook
        from skimage import data as skdata

        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            data = np.frombuffer(handle.read(), dtype=np.uint8)
        hopper = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return hopper, skdata.stereo_motorcycle()[1]
    if source not in _FILES:
        raise ValueError(f"unknown photo source {source!r}; choose from {SOURCES}")
    package, files = _FILES[source]
    photos = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"{path} is missing: photo source {source!r} needs 'apt-get install {package}'")
        photos.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return tuple(photos)


def other_photographs(n: int, size: int = 32, seed: int = 0, source: str = "other") -> torch.Tensor:
    """``n`` seeded square crops (35-100% of the short side, area-resized to ``size``) cycling over
    the source's photographs: uint8 ``[n, 3, size, size]``."""
    photos = _photographs(source)
    generator = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for index in range(n):
        photo = photos[index % len(photos)]
        short = min(photo.shape[:2])
        side = int(generator.uniform(0.35, 1.0) * short)
        top = int(generator.integers(0, photo.shape[0] - side + 1))
        left = int(generator.integers(0, photo.shape[1] - side + 1))
        crop = photo[top : top + side, left : left + side]
        images[index] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
