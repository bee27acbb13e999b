"""Datasets: the embedded natural photographs, CIFAR pickle folders and image folders."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from harness.data import NATURAL_REGIONS, load_dataset
from tests.cifar_folders import write_cifar10, write_cifar100


def test_natural_is_seeded_balanced_and_sized() -> None:
    first = load_dataset("natural", "train", (24, 40), n=30, seed=3)
    again = load_dataset("natural", "train", (24, 40), n=30, seed=3)
    other = load_dataset("natural", "train", (24, 40), n=30, seed=4)
    assert first.images.dtype == torch.uint8 and first.images.shape == (30, 3, 24, 40)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)
    assert torch.bincount(first.labels, minlength=10).tolist() == [3] * 10
    assert len(first.classes) == 10 and first.classes[0] == "astronaut"


def test_natural_regions_are_disjoint() -> None:
    bands = sorted(NATURAL_REGIONS.values())
    assert bands[0][0] == 0.0 and bands[-1][1] == 1.0
    assert all(a[1] <= b[0] for a, b in zip(bands, bands[1:]))
    splits = {s: load_dataset("natural", s, (16, 16), n=20, seed=0) for s in NATURAL_REGIONS}
    # crops from disjoint regions cannot coincide
    flat = {s: d.images.flatten(1) for s, d in splits.items()}
    for s in flat:
        for t in flat:
            if s < t:
                assert not (flat[s][:, None] == flat[t][None]).all(-1).any()


def test_cifar10_pickle_folder(tmp_path: Path) -> None:
    test_rows = write_cifar10(tmp_path)
    train = load_dataset("cifar10", "train", (32, 32), data_dir=tmp_path)
    test = load_dataset("cifar10", "test", (32, 32), data_dir=tmp_path / "cifar-10-batches-py")
    attacker = load_dataset("cifar10", "attacker", (32, 32), data_dir=tmp_path)
    assert len(train) == 20 and len(test) == 4 and len(attacker) == 4
    # rows are R plane, G plane, B plane of 32x32 each
    assert torch.equal(test.images, torch.from_numpy(test_rows.reshape(4, 3, 32, 32)))
    assert test.classes[3] == "class3"
    upscaled = load_dataset("cifar10", "test", (64, 64), n=2, data_dir=tmp_path)
    assert upscaled.images.shape == (2, 3, 64, 64)


def test_cifar100_pickle_folder(tmp_path: Path) -> None:
    write_cifar100(tmp_path, train=6, test=3)
    train = load_dataset("cifar100", "train", (32, 32), data_dir=tmp_path)
    test = load_dataset("cifar100", "test", (32, 32), data_dir=tmp_path)
    assert len(train) == 6 and len(test) == 3 and len(train.classes) == 100
    assert train.labels.max() < 100 and train.images.dtype == torch.uint8


def test_cifar_missing_and_malformed_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("cifar10", "train", data_dir=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="batches.meta not found"):
        load_dataset("cifar10", "train", data_dir=tmp_path)
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch is not a readable cifar10 pickle"):
        load_dataset("cifar10", "test", data_dir=tmp_path)
    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("wb") as handle:
        pickle.dump({b"labels": [1]}, handle)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['data'\]"):
        load_dataset("cifar10", "test", data_dir=tmp_path)
    with pytest.raises(ValueError, match="pass data_dir"):
        load_dataset("cifar10", "test")


def test_folder_dataset(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for label, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
            folder = tmp_path / split / f"class{label}"
            folder.mkdir(parents=True)
            image = np.zeros((20, 30, 3), dtype=np.uint8)
            image[:] = colour  # RGB
            cv2.imwrite(str(folder / "a.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    train = load_dataset("folder", "train", (8, 8), data_dir=tmp_path)
    assert train.classes == ("class0", "class1")
    assert train.images[0, :, 0, 0].tolist() == [255, 0, 0]  # read back as RGB
    with pytest.raises(FileNotFoundError, match="attacker not found"):
        load_dataset("folder", "attacker", data_dir=tmp_path)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        load_dataset("natural", "validation", n=3)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist", "train", n=3)
    with pytest.raises(ValueError, match="give n"):
        load_dataset("natural", "train")


def test_cifar_pickles_that_would_run_code_are_refused(tmp_path) -> None:
    import os

    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("wb") as handle:
        pickle.dump({b"data": Exploit(), b"labels": [0]}, handle)
    with pytest.raises(ValueError, match="refusing to load"):
        load_dataset("cifar10", "test", (32, 32), data_dir=tmp_path)
    assert not marker.exists()


def test_cifar_values_outside_0_255_are_rejected_with_the_file(tmp_path) -> None:
    write_cifar10(tmp_path)
    rows = np.full((2, 3072), 300, dtype=np.int64)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    with path.open("wb") as handle:
        pickle.dump({b"data": rows, b"labels": [0, 1]}, handle)
    with pytest.raises(ValueError, match=r"test_batch: 'data' holds values outside 0\.\.255"):
        load_dataset("cifar10", "test", (32, 32), data_dir=tmp_path)
    with path.open("wb") as handle:
        pickle.dump({b"data": rows[:, :100], b"labels": [0, 1]}, handle)
    with pytest.raises(ValueError, match=r"must be \[N, 3072\] rows"):
        load_dataset("cifar10", "test", (32, 32), data_dir=tmp_path)


def test_own_photographs_are_shared_out_disjointly_without_labels(tmp_path) -> None:
    from tests.photos import other_photographs

    photos = other_photographs(12, size=40, seed=3).permute(0, 2, 3, 1).numpy()
    (tmp_path / "holiday").mkdir()
    for index, photo in enumerate(photos):
        wide = np.concatenate([photo, photo[:, :8]], axis=1)  # 40 x 48: centre-cropped to 40 x 40
        cv2.imwrite(str(tmp_path / ("holiday" if index % 2 else ".") / f"p{index:02d}.png"), cv2.cvtColor(wide, cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("not a photograph")
    splits = {split: load_dataset("images", split, (32, 32), seed=1, data_dir=tmp_path) for split in ("test", "train", "attacker")}
    assert [len(splits[s]) for s in ("test", "train", "attacker")] == [6, 3, 3]
    assert all(d.classes == () and (d.labels == -1).all() for d in splits.values())
    flat = [img.numpy().tobytes() for d in splits.values() for img in d.images]
    assert len(set(flat)) == 12  # every photograph in exactly one split
    assert len(load_dataset("images", "test", (32, 32), n=2, seed=1, data_dir=tmp_path)) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="needs at least 4"):
        load_dataset("images", "test", (32, 32), data_dir=empty)


def _rewrite_test_batch(root: Path, content: dict) -> Path:
    path = root / "cifar-10-batches-py" / "test_batch"
    with path.open("wb") as handle:
        pickle.dump(content, handle)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, r"test_batch holds 0 images"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [b"cat", b"dog"]}, r"test_batch: 'labels' must hold integer labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["cat", "dog"]}, r"test_batch: 'labels' must hold integer labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1.5, 2.0]}, r"test_batch: 'labels' holds labels that are not whole numbers"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2, 3]}, r"test_batch: 3 labels for 2 images"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 10]}, r"test_batch: labels must lie in 0\.\.9"),
    ],
    ids=["zero_rows", "bytes_labels", "str_labels", "fractional_labels", "count", "range"],
)
def test_cifar_label_problems_name_the_file(tmp_path: Path, content: dict, message: str) -> None:
    write_cifar10(tmp_path)
    _rewrite_test_batch(tmp_path, content)
    with pytest.raises(ValueError, match=message):
        load_dataset("cifar10", "test", (32, 32), data_dir=tmp_path)


def test_cifar_whole_float_labels_are_read_exactly(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    _rewrite_test_batch(tmp_path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3.0, 9.0]})
    assert load_dataset("cifar10", "test", (32, 32), data_dir=tmp_path).labels.tolist() == [3, 9]


def test_cifar_meta_without_class_names_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    with (tmp_path / "cifar-10-batches-py" / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [1, 2]}, handle)
    with pytest.raises(ValueError, match=r"batches.meta: 'label_names' must be a non-empty list of class names"):
        load_dataset("cifar10", "test", (32, 32), data_dir=tmp_path)


# -- the images and folder datasets check every file before use -------------------------------
def _photo_jpeg(side: int = 256) -> bytes:
    """A real photograph (matplotlib's Grace Hopper) as JPEG bytes, large enough to cut mid-scan."""
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        data = np.frombuffer(handle.read(), dtype=np.uint8)
    photo = cv2.resize(cv2.imdecode(data, cv2.IMREAD_COLOR), (side, side), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _photo_folder(root: Path, count: int = 8) -> list[Path]:
    from tests.photos import other_photographs

    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, photo in enumerate(other_photographs(count, size=40, seed=5).permute(0, 2, 3, 1).numpy()):
        path = root / f"good{index:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def _loaded_total(root: Path, **options) -> int:
    return sum(len(load_dataset("images", split, (32, 32), seed=1, data_dir=root, **options)) for split in ("test", "train", "attacker"))


@pytest.mark.parametrize("damage", ["truncated_jpeg", "truncated_png", "png_without_iend", "undecodable", "empty"])
def test_images_skip_damaged_files_with_one_warning_each_or_refuse_them_when_strict(tmp_path: Path, damage: str) -> None:
    from harness.data import SkippedImageWarning, UnusableImageError

    root = tmp_path / "photos"
    _photo_folder(root, 8)
    if damage == "truncated_jpeg":  # OpenCV alone would decode the first half and grey the rest
        whole = _photo_jpeg()
        (root / "bad.jpg").write_bytes(whole[: len(whole) // 2])
        expected = "truncated"
    elif damage in ("truncated_png", "png_without_iend"):
        whole = (root / "good00.png").read_bytes()
        (root / "bad.png").write_bytes(whole[: len(whole) // 2] if damage == "truncated_png" else whole[:-6])
        expected = "truncated"
    elif damage == "undecodable":
        (root / "bad.jpg").write_bytes(b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9")
        expected = "could not be decoded"
    else:
        (root / "bad.webp").write_bytes(b"")
        expected = "empty"
    with pytest.warns(SkippedImageWarning, match=rf"skipping .*bad\.\w+: .*{expected}") as caught:
        assert _loaded_total(root) == 8  # the damaged file is in no split
    assert len([w for w in caught if issubclass(w.category, SkippedImageWarning)]) == 1  # one line per file, not per split
    with pytest.raises(UnusableImageError, match=rf"bad\.\w+: .*{expected}"):
        load_dataset("images", "test", (32, 32), seed=1, data_dir=root, strict=True)


def test_a_truncated_photograph_is_never_used_half_grey(tmp_path: Path) -> None:
    from harness.data import check_image_file

    whole = _photo_jpeg()
    for cut in (len(whole) // 3, len(whole) // 2, len(whole) - 200, len(whole) - 2):
        path = tmp_path / f"cut{cut}.jpg"
        path.write_bytes(whole[:cut])
        assert "truncated" in (check_image_file(path) or ""), cut
    (tmp_path / "whole.jpg").write_bytes(whole)
    assert check_image_file(tmp_path / "whole.jpg") is None


def test_unreadable_photograph_is_named_as_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The message path, by a read that raises PermissionError (root reads mode-000 files)."""
    from harness.data import UnusableImageError

    root = tmp_path / "photos"
    paths = _photo_folder(root, 8)
    locked = paths[3]
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == locked.name:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    messages: list[str] = []
    total = sum(len(load_dataset("images", s, (32, 32), seed=1, data_dir=root, warn=messages.append)) for s in ("test", "train", "attacker"))
    assert total == 7
    assert messages == [f"skipping {locked}: permission denied (make it readable, e.g. chmod u+r, or move it out of the folder)"]
    with pytest.raises(UnusableImageError, match=r"good03\.png: permission denied"):
        load_dataset("images", "attacker", (32, 32), seed=1, data_dir=root, strict=True)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads mode-000 files: chmod 000 cannot make a file unreadable")
def test_mode_000_photograph_is_skipped_as_permission_denied(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    paths = _photo_folder(root, 8)
    paths[2].chmod(0)
    messages: list[str] = []
    try:
        assert len(load_dataset("images", "test", (32, 32), seed=1, data_dir=root, warn=messages.append)) == 4  # 7 usable: round(3.5) = 4
    finally:
        paths[2].chmod(0o600)
    assert messages and "permission denied" in messages[0] and paths[2].name in messages[0]


def test_folder_dataset_skips_damaged_files_too(tmp_path: Path) -> None:
    from harness.data import UnusableImageError

    for label in ("a", "b"):
        _photo_folder(tmp_path / "train" / label, 2)
    whole = _photo_jpeg()
    (tmp_path / "train" / "b" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    messages: list[str] = []
    data = load_dataset("folder", "train", (32, 32), data_dir=tmp_path, warn=messages.append)
    assert len(data) == 4 and data.labels.tolist() == [0, 0, 1, 1]
    assert len(messages) == 1 and "cut.jpg: is truncated" in messages[0]
    with pytest.raises(UnusableImageError, match="cut.jpg"):
        load_dataset("folder", "train", (32, 32), data_dir=tmp_path, strict=True)


def test_too_few_usable_photographs_says_how_many_were_skipped(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _photo_folder(root, 3)
    (root / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"3 usable photographs \(1 skipped as unusable\).*at least 4"):
        load_dataset("images", "test", (32, 32), data_dir=root)


@pytest.mark.parametrize("count", [4, 5, 6, 7, 9, 12, 13, 100])
def test_images_split_sizes_match_what_load_dataset_shares_out(tmp_path: Path, count: int) -> None:
    from harness.data import count_photographs, images_split_sizes

    sizes = images_split_sizes(count)
    assert sum(sizes.values()) == count and all(v >= 1 for v in sizes.values())
    assert images_split_sizes(count, n=2) == {s: min(2, v) for s, v in sizes.items()}
    if count <= 13:
        root = tmp_path / "photos"
        _photo_folder(root, count)
        assert count_photographs(root) == count
        assert {s: len(load_dataset("images", s, (32, 32), seed=2, data_dir=root)) for s in sizes} == sizes
    with pytest.raises(ValueError, match="non-negative"):
        images_split_sizes(-1)
