"""Datasets as uint8 ``[N, C, H, W]`` images: ``natural`` (embedded), ``cifar10``/``cifar100``, ``folder``, ``images``.

Every dataset has three splits: ``train`` and ``test`` for the victim's classifier and
``attacker``, the attacker's own plain images, disjoint from the victim's test images.
Nothing here downloads: CIFAR and folders are read from a path the user gives.

CIFAR stays at its stored 32 x 32 (150 MB for the training split) and is resized a batch at a
time, on the device that uses it (:meth:`ImageDataset.batch`, :meth:`ImageDataset.lazy`):
the paper's 224 x 224 would be 7.5 GB for the training split alone.  Images of other sizes
(crops, photographs) are resized once as they are read.
"""

from __future__ import annotations

import functools
import io
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from harness.keys import derive_seed, rng
from harness.lazy import LazyImages

SPLITS = ("train", "test", "attacker")
DATASETS = ("natural", "cifar10", "cifar100", "folder", "images")
#: the datasets with labels (``images`` has none: accuracy cells on it are n/a)
LABELLED_DATASETS = ("natural", "cifar10", "cifar100", "folder")
#: ``images``: how a folder of unlabeled photographs is shared out, in order of a seeded shuffle
IMAGES_SPLITS = {"test": (0.0, 0.5), "train": (0.5, 0.75), "attacker": (0.75, 1.0)}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class ImageDataset:
    """Images at ``image_size``, integer labels ``[N]`` and class names.

    ``stored``: the uint8 ``[N, C, h, w]`` images as read; ``size``: the size they are used at
    (None: as stored).  :meth:`batch` and :meth:`lazy` resize a batch at a time on the device
    that asks; :attr:`images` makes the whole split at ``image_size`` (for small data only).
    """

    stored: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str
    split: str
    size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return int(self.stored.shape[0])

    @property
    def channels(self) -> int:
        return int(self.stored.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        if self.size is not None:
            return int(self.size[0]), int(self.size[1])
        return int(self.stored.shape[-2]), int(self.stored.shape[-1])

    @property
    def images(self) -> torch.Tensor:
        """Every image at ``image_size`` as one tensor (the stored tensor itself when no resize is due)."""
        if self.stored.shape[-2:] == self.image_size:
            return self.stored
        return self.batch(torch.arange(len(self)))

    def batch(self, index: torch.Tensor, device: str | torch.device | None = None, stored: torch.Tensor | None = None) -> torch.Tensor:
        """The images at ``index`` at ``image_size``, resized on ``device`` (default: where they are stored).

        ``stored``: the stored images already moved to ``device`` (the training loop keeps them there).
        """
        source = self.stored if stored is None else stored
        images = source[index.to(source.device)]
        if device is not None:  # non-blocking only host-to-accelerator, where it is safe
            images = images.to(device, non_blocking=torch.device(device).type != "cpu")
        return resize_images(images, self.image_size)

    def lazy(self, device: str | torch.device | None = None) -> LazyImages:
        """The images at ``image_size`` as a :class:`LazyImages` (made a batch at a time on ``device``)."""
        return LazyImages(len(self), (self.channels, *self.image_size), lambda index: self.batch(index, device))


def load_dataset(
    name: str,
    split: str,
    image_size: tuple[int, int] = (32, 32),
    n: int | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
    *,
    strict: bool = False,
    warn: Callable[[str], None] | None = None,
) -> ImageDataset:
    """Load ``split`` of dataset ``name`` resized to ``image_size``; ``n`` limits the count.

    ``folder`` and ``images``: every image file is checked before use (:func:`check_image_file`);
    one that cannot be read (permission denied, I/O error), is empty, truncated or undecodable is
    skipped with one warning line (``warn``, default :func:`warnings.warn` with
    :class:`SkippedImageWarning`; each file once per process), or, with ``strict``, refused:
    :class:`UnusableImageError` names every such file.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    height, width = (int(v) for v in image_size)
    if n is not None and n < 1:
        raise ValueError(f"n must be a positive number of images, got {n}")
    if name == "natural":
        if n is None:
            raise ValueError("the natural dataset draws crops: give n, the number of images")
        images, labels, classes = _natural(split, (height, width), n, seed)
    elif name in ("cifar10", "cifar100"):
        images, labels, classes = _cifar(name, _require_dir(data_dir, name), split)
        images, labels = _subset(images, labels, n, derive_seed(seed, name, split, "subset"))
    elif name == "folder":
        images, labels, classes = _folder(_require_dir(data_dir, name), split, (height, width), strict, warn)
        images, labels = _subset(images, labels, n, derive_seed(seed, name, split, "subset"))
    elif name == "images":
        images = _own_photographs(_require_dir(data_dir, name), split, (height, width), n, seed, strict, warn)
        labels, classes = np.full(images.shape[0], -1), ()
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    return ImageDataset(
        stored=torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=tuple(classes),
        name=name,
        split=split,
        size=(height, width),
    )


# -- natural: crops of the photographs that ship with scikit-image and scikit-learn --------
def _photographs() -> dict[str, Callable[[], np.ndarray]]:
    from skimage import data
    from sklearn.datasets import load_sample_image

    return {
        "astronaut": data.astronaut,
        "chelsea": data.chelsea,
        "coffee": data.coffee,
        "hubble_deep_field": data.hubble_deep_field,
        "ihc": data.immunohistochemistry,
        "motorcycle_left": lambda: data.stereo_motorcycle()[0],
        "retina": data.retina,
        "rocket": data.rocket,
        "china": lambda: load_sample_image("china.jpg"),
        "flower": lambda: load_sample_image("flower.jpg"),
    }


#: disjoint bands along each photograph's longer axis: (start, stop) as fractions
NATURAL_REGIONS = {"train": (0.0, 0.5), "test": (0.5, 0.75), "attacker": (0.75, 1.0)}
#: crop side as a fraction of the region's shorter side
NATURAL_CROP_SCALE = (0.35, 1.0)


@functools.lru_cache(maxsize=None)
def _photograph(name: str) -> np.ndarray:
    """RGB photograph ``name``, its bands along the longer axis (decoded once per process)."""
    photo = _photographs()[name]()[..., :3]
    return photo.transpose(1, 0, 2) if photo.shape[0] > photo.shape[1] else photo


def _natural(split: str, size: tuple[int, int], n: int, seed: int):
    classes = list(_photographs())
    generator = rng(derive_seed(seed, "natural", split))
    labels = generator.permutation(np.arange(n) % len(classes))
    images = np.empty((n, size[0], size[1], 3), dtype=np.uint8)
    start, stop = NATURAL_REGIONS[split]
    for label, class_name in enumerate(classes):
        photo = _photograph(class_name)
        lo, hi = int(start * photo.shape[1]), int(stop * photo.shape[1])
        region = photo[:, lo:hi]
        short = min(region.shape[:2])
        for index in np.flatnonzero(labels == label):
            side = int(generator.uniform(*NATURAL_CROP_SCALE) * short)
            top = int(generator.integers(0, region.shape[0] - side + 1))
            left = int(generator.integers(0, region.shape[1] - side + 1))
            images[index] = _resize(region[top : top + side, left : left + side], size)
    return images, labels, classes


# -- CIFAR: the standard python-pickle folders ----------------------------------------------
CIFAR_LAYOUT = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "attacker": ["data_batch_5"],
        "meta": ("batches.meta", b"label_names"),
        "labels": b"labels",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "attacker": ["train"],
        "meta": ("meta", b"fine_label_names"),
        "labels": b"fine_labels",
    },
}
#: CIFAR-100 has one training file: the attacker takes its last 10,000 images (like data_batch_5)
CIFAR_ATTACKER_COUNT = 10_000
#: images per split of the standard CIFAR-10 and CIFAR-100 files
CIFAR_SPLIT_SIZES = {"train": 50_000, "test": 10_000, "attacker": CIFAR_ATTACKER_COUNT}


def _cifar(name: str, data_dir: Path, split: str):
    layout = CIFAR_LAYOUT[name]
    root = data_dir / layout["folder"] if (data_dir / layout["folder"]).is_dir() else data_dir
    meta_file, meta_key = layout["meta"]
    classes = _class_names(_read_pickle(root / meta_file, (meta_key,), name)[meta_key], root / meta_file, meta_key)
    chunks, labels = [], []
    for file_name in layout[split]:
        path = root / file_name
        batch = _read_pickle(path, (b"data", layout["labels"]), name)
        data = _pixel_rows(batch[b"data"], path)
        chunks.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(_label_values(batch[layout["labels"]], path, layout["labels"].decode(), data.shape[0], len(classes)))
    images, label_array = np.concatenate(chunks), np.concatenate(labels)
    if name == "cifar100" and split == "attacker":
        images, label_array = images[-CIFAR_ATTACKER_COUNT:], label_array[-CIFAR_ATTACKER_COUNT:]
    return images, label_array, classes


def _class_names(values: object, path: Path, key: bytes) -> list[str]:
    """The meta file's class names (bytes or str), refusing anything else with the file's name."""
    names = list(values) if isinstance(values, (list, tuple, np.ndarray)) else None
    if not names or not all(isinstance(v, (bytes, str)) for v in names):
        raise ValueError(f"{path}: {key.decode()!r} must be a non-empty list of class names (bytes or str), got {values!r:.80}")
    try:
        return [v.decode() if isinstance(v, bytes) else v for v in names]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: a class name in {key.decode()!r} is not text ({exc})") from None


def _label_values(values: object, path: Path, key: str, rows: int, classes: int) -> np.ndarray:
    """``values`` as int64 labels, one per image row of ``path`` and each in 0..classes-1.

    Refused, naming the file: a batch of 0 rows, labels that are not numbers (strings, bytes),
    numbers that are not whole (float labels are never truncated), a count that differs from the
    rows, labels outside the class names.
    """
    if rows == 0:
        raise ValueError(f"{path} holds 0 images ('data' has 0 rows): a CIFAR batch needs at least one; replace the file")
    try:
        labels = np.asarray(values)
    except Exception as exc:  # ragged lists
        raise ValueError(f"{path}: {key!r} must be a flat list of integer labels ({type(exc).__name__}: {exc})") from None
    if labels.ndim != 1:
        raise ValueError(f"{path}: {key!r} must be a flat list of integer labels, got shape {labels.shape}")
    if labels.dtype == bool or not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise ValueError(f"{path}: {key!r} must hold integer labels, got {labels.dtype} values such as {labels[:3].tolist()!r:.60}")
    if np.issubdtype(labels.dtype, np.floating):
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            bad = labels[~whole][:3].tolist()
            raise ValueError(f"{path}: {key!r} holds labels that are not whole numbers (e.g. {bad}); labels are class indices")
    if labels.shape[0] != rows:
        raise ValueError(f"{path}: {labels.shape[0]} labels for {rows} images; '{key}' and 'data' must have one entry per image")
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"{path}: labels must lie in 0..{classes - 1} (the {classes} class names), got {labels.min()}..{labels.max()}")
    return labels.astype(np.int64)


#: the only globals a CIFAR batch may name: numpy's array reconstruction, and the bytes codec
#: Python 2 pickles use; anything else (os.system, builtins.eval, ...) is refused before it runs
SAFE_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
})


class SafeUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dicts, lists, bytes, strings and numbers, and nothing that runs code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays, lists, bytes and numbers")
        return super().find_class(module, name)


def _read_pickle(path: Path, keys: tuple[bytes, ...], name: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: expected the standard {name} python-pickle folder "
            f"({CIFAR_LAYOUT[name]['folder']}) at --data-dir"
        )
    try:
        with path.open("rb") as handle:
            content = SafeUnpickler(handle, encoding="bytes").load()
    except Exception as exc:
        raise ValueError(f"{path} is not a readable {name} pickle: {type(exc).__name__}: {exc}") from exc
    missing = [k.decode() for k in keys if not isinstance(content, dict) or k not in content]
    if missing:
        raise ValueError(f"{path} is malformed: missing key(s) {missing} of the {name} format")
    return content


def _pixel_rows(values: object, path: Path) -> np.ndarray:
    """``values`` as ``[N, 3072]`` uint8 rows, refusing other shapes and values outside 0..255 (never wrapping)."""
    data = np.asarray(values)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' must be [N, 3072] rows of pixel values, got shape {data.shape}")
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
        raise ValueError(f"{path}: 'data' must hold integer pixel values, got dtype {data.dtype}")
    if data.size and (data.min() < 0 or data.max() > 255):
        raise ValueError(f"{path}: 'data' holds values outside 0..255 (min {data.min()}, max {data.max()})")
    return data.astype(np.uint8)


# -- folder: <data_dir>/<split>/<class>/<image> ---------------------------------------------
def _folder(data_dir: Path, split: str, size: tuple[int, int], strict: bool = False, warn: Callable[[str], None] | None = None):
    split_dir = data_dir / split
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"{split_dir} not found: the folder dataset expects {data_dir}/<split>/<class>/<image> "
            f"with splits {SPLITS}"
        )
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{split_dir} has no class subfolders")
    listed = [(label, path) for label, class_name in enumerate(classes)
              for path in sorted((split_dir / class_name).iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES]
    usable = set(usable_images([path for _, path in listed], strict=strict, warn=warn))
    images, labels = [], []
    for label, path in listed:
        if path in usable:
            images.append(_resize(_decode_rgb(path), size))
            labels.append(label)
    if not images:
        raise ValueError(f"{split_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return np.stack(images), np.asarray(labels), classes


# -- images: a folder of the user's own photographs, no labels ------------------------------
def images_split_sizes(count: int, n: int | None = None) -> dict[str, int]:
    """How many of ``count`` usable photographs each split of the ``images`` dataset gets.

    Pure (no files read): ``{"test": ..., "train": ..., "attacker": ...}`` by :data:`IMAGES_SPLITS`
    (half, a quarter, a quarter; boundaries rounded), each capped at ``n`` when given.  The runner
    and the config validator use it to fit ``known_pairs`` and similar counts to a small folder
    (:func:`count_photographs` gives ``count``).
    """
    if isinstance(count, bool) or int(count) != count or count < 0:
        raise ValueError(f"count must be a non-negative number of photographs, got {count!r}")
    count = int(count)
    sizes = {}
    for split, (start, stop) in IMAGES_SPLITS.items():
        size = round(stop * count) - round(start * count)
        sizes[split] = size if n is None else min(size, int(n))
    return sizes


def split_sizes(name: str, data_dir: str | Path | None = None, n: Mapping[str, int | None] | None = None) -> dict[str, int]:
    """How many images each split of dataset ``name`` yields, capped by ``n`` (split -> count or
    None), decoding nothing: the runner checks counts such as ``known_pairs`` against them before
    any cell runs.  ``natural``: ``n`` itself; CIFAR: the standard files' counts; ``folder``: the
    image files of each split folder (an unusable one is skipped at load, so this is an upper
    bound); ``images``: :func:`images_split_sizes` of the usable photographs (files are checked).
    A folder the dataset cannot use raises what :func:`load_dataset` would raise."""
    limits = dict(n or {})
    if name == "natural":
        if any(limits.get(split) is None for split in SPLITS):
            raise ValueError("the natural dataset draws crops: give n, the number of images, for every split")
        return {split: int(limits[split]) for split in SPLITS}  # type: ignore[arg-type]
    if name in ("cifar10", "cifar100"):
        sizes = dict(CIFAR_SPLIT_SIZES)
    elif name == "folder":
        root = _require_dir(data_dir, name)
        sizes = {}
        for split in SPLITS:
            if not (root / split).is_dir():
                raise FileNotFoundError(f"{root / split} not found: the folder dataset expects {root}/<split>/<class>/<image> with splits {SPLITS}")
            sizes[split] = sum(1 for p in (root / split).glob("*/*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    elif name == "images":
        root = _require_dir(data_dir, name)
        count = sum(check_image_file(path) is None for path in photograph_paths(root))  # the runner warns once, later
        if count < MIN_PHOTOGRAPHS:
            raise ValueError(f"{root} holds {count} usable photographs; the images dataset needs at least {MIN_PHOTOGRAPHS}")
        sizes = images_split_sizes(count)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    return {split: size if limits.get(split) is None else min(size, int(limits[split])) for split, size in sizes.items()}  # type: ignore[arg-type]


def photograph_paths(data_dir: str | Path) -> list[Path]:
    """Every image file under ``data_dir`` (any depth, by suffix), sorted by path: the candidates."""
    return sorted(p for p in Path(data_dir).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def count_photographs(data_dir: str | Path, strict: bool = False, warn: Callable[[str], None] | None = None) -> int:
    """The number of usable photographs the ``images`` dataset shares out (unusable ones skipped, or refused with ``strict``)."""
    return len(usable_images(photograph_paths(data_dir), strict=strict, warn=warn))


def _own_photographs(
    data_dir: Path, split: str, size: tuple[int, int], n: int | None, seed: int,
    strict: bool = False, warn: Callable[[str], None] | None = None,
) -> np.ndarray:
    """The user's photographs under ``data_dir`` (any depth), for key-space and security cells.

    Rule: every image file (by suffix, sorted by path) that passes :func:`check_image_file` is one
    image (the others are skipped with a warning, or refused with ``strict``); a shuffle seeded
    by the run seed shares them out, the first half to ``test`` (the victim's images that are
    attacked), the next quarter to ``train`` (more ciphertexts under the victim's key, as the
    provider holds them) and the last quarter to ``attacker`` (the attacker's own images, disjoint
    from the victim's): :func:`images_split_sizes`; ``n`` keeps the first n of a split.  Each
    photograph is centre-cropped to a square and resized to ``size`` (area averaging when
    shrinking, bicubic when enlarging).  There are no labels: accuracy cells need a labelled dataset.
    """
    candidates = photograph_paths(data_dir)
    paths = usable_images(candidates, strict=strict, warn=warn)
    if len(paths) < MIN_PHOTOGRAPHS:
        skipped = f" ({len(candidates) - len(paths)} skipped as unusable)" if len(candidates) > len(paths) else ""
        raise ValueError(
            f"{data_dir} holds {len(paths)} usable photographs{skipped} ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            f"the images dataset needs at least {MIN_PHOTOGRAPHS}"
        )
    order = rng(derive_seed(seed, "images", "split")).permutation(len(paths))
    start, stop = IMAGES_SPLITS[split]
    chosen = [paths[i] for i in order[round(start * len(paths)) : round(stop * len(paths))]][:n]
    images = []
    for path in chosen:
        rgb = _decode_rgb(path)
        side = min(rgb.shape[:2])
        top, left = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
        images.append(_resize(rgb[top : top + side, left : left + side], size))
    return np.stack(images)


# -- checking image files before use ----------------------------------------------------------
#: the ``images`` dataset needs at least this many usable photographs (one per split, and more test)
MIN_PHOTOGRAPHS = 4


class UnusableImageError(ValueError):
    """An image file cannot be used (unreadable, empty, truncated or undecodable); the message names it."""


class SkippedImageWarning(UserWarning):
    """An unusable image file was skipped (the message names the file and why)."""


#: (path, size, mtime) -> None (usable) or the reason it is not; read failures are never cached
_CHECKED: dict[tuple[str, int, int], str | None] = {}
#: (path, reason) already warned about in this process: one warning line per file
_WARNED: set[tuple[str, str]] = set()


def check_image_file(path: str | Path) -> str | None:
    """None when ``path`` is a whole, decodable image; otherwise why not, in words.

    Reads the bytes (a permission error is named as such), refuses empty files, checks that a
    PNG ends with its IEND chunk and a JPEG holds its end-of-image marker, then decodes the whole
    file with Pillow (which reports a truncated JPEG or PNG that OpenCV would decode as partly
    grey) and with OpenCV (what the pixels are read with).
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        return _os_reason(exc)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _CHECKED:
        return _CHECKED[key]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _os_reason(exc)  # not cached: permissions get fixed
    reason = _content_problem(data)
    _CHECKED[key] = reason
    return reason


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied (make it readable, e.g. chmod u+r, or move it out of the folder)"
    return f"could not be read ({exc.strerror or exc})"


def _content_problem(data: bytes) -> str | None:
    if not data:
        return "is empty (0 bytes)"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        end = data.rfind(b"IEND")
        if end < 0 or len(data) < end + 8:
            return "is truncated (a PNG without its IEND chunk)"
    elif data.startswith(b"\xff\xd8"):
        if data.rfind(b"\xff\xd9") < 2:
            return "is truncated (a JPEG without its end-of-image marker FFD9)"
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format == "JPEG":
                    image.draft("RGB", (64, 64))  # decode at 1/8 scale: still reads every byte of the scan
                image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError):
        pass  # a format Pillow does not know, or a panorama past its pixel limit: OpenCV decides below
    except Exception as exc:
        text = str(exc)
        if "truncated" in text.lower():
            return f"is truncated ({text})"
        return f"could not be decoded as an image ({type(exc).__name__}: {text})"
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None or decoded.size == 0:
        return "could not be decoded as an image (not an image OpenCV reads, or damaged)"
    return None


def usable_images(
    paths: list[Path], strict: bool = False, warn: Callable[[str], None] | None = None
) -> list[Path]:
    """The ``paths`` that pass :func:`check_image_file`, in order.

    Each unusable file gives one warning line (``warn``; default :func:`warnings.warn` with
    :class:`SkippedImageWarning`), once per file per process; with ``strict`` an
    :class:`UnusableImageError` names every unusable file instead.
    """
    usable, problems = [], []
    for path in paths:
        reason = check_image_file(path)
        if reason is None:
            usable.append(path)
        else:
            problems.append((path, reason))
    if strict and problems:
        listed = "; ".join(f"{path}: {reason}" for path, reason in problems)
        raise UnusableImageError(f"{len(problems)} image file(s) cannot be used (strict): {listed}")
    for path, reason in problems:
        if (str(path), reason) in _WARNED:
            continue
        _WARNED.add((str(path), reason))
        message = f"skipping {path}: {reason}"
        if warn is None:
            warnings.warn(message, SkippedImageWarning, stacklevel=2)
        else:
            warn(message)
    return usable


def _decode_rgb(path: Path) -> np.ndarray:
    """A checked image file as RGB uint8 HWC (OpenCV, as always; EXIF orientation applied)."""
    try:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error:
        bgr = None
    if bgr is None:  # changed or made unreadable since it was checked
        reason = check_image_file(path) or "could not be decoded as an image"
        raise UnusableImageError(f"{path}: {reason}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# -- helpers ----------------------------------------------------------------------------------
def _require_dir(data_dir: str | Path | None, name: str) -> Path:
    if data_dir is None:
        raise ValueError(f"dataset {name!r} is read from a local folder: pass data_dir (--data-dir)")
    path = Path(data_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"data_dir {path} does not exist or is not a folder (dataset {name!r})")
    return path


def _subset(images: np.ndarray, labels: np.ndarray, n: int | None, seed: int):
    if n is None or n >= images.shape[0]:
        return images, labels
    keep = np.sort(rng(seed).choice(images.shape[0], size=n, replace=False))
    return images[keep], labels[keep]


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    shrinking = image.shape[0] >= height and image.shape[1] >= width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A uint8 batch ``[B, C, h, w]`` resized to ``size`` on its own device, uint8.

    Enlarging (CIFAR's 32 to the seed's 224) is bicubic with a = -0.75 and half-pixel centres,
    OpenCV's INTER_CUBIC, as is any resize that enlarges one side; shrinking both sides is area
    averaging (adaptive average pooling: OpenCV's INTER_AREA for whole-number factors, not for
    fractional ones).  Values are rounded half to even and clamped to 0..255.  Computed in
    float32; on the CPU the result is deterministic.
    """
    height, width = (int(v) for v in size)
    if tuple(images.shape[-2:]) == (height, width):
        return images
    shrinking = images.shape[-2] >= height and images.shape[-1] >= width
    mode = "area" if shrinking else "bicubic"
    options = {} if shrinking else {"align_corners": False}
    resized = F.interpolate(images.float(), size=(height, width), mode=mode, **options)
    return resized.round_().clamp_(0, 255).to(torch.uint8)
