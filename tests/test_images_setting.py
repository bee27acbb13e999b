"""``validate``/``plan`` refuse what would fail a cell for a configuration reason and fit the
defaults to a small ``--images`` folder; ``--images`` runs at the seed's 224 x 224 setting;
``--image-size`` and ``--block-size`` set one size and one block for everything."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import yaml

from harness.run.cli import main
from harness.run.plan import cipher_options
from tests.photos import other_photographs


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """15 real photographs (small crops of Grace Hopper's portrait and a motorcycle): 8 test, 3 train, 4 attacker."""
    folder = tmp_path_factory.mktemp("photos")
    for index, photo in enumerate(other_photographs(15, size=40, seed=5).permute(0, 2, 3, 1).numpy()):
        cv2.imwrite(str(folder / f"{index:02d}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    return folder


def _cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    lines: list[str] = []
    code = main(list(argv), stdout=lines.append)
    return code, "\n".join(lines), capsys.readouterr().err


def _validated(capsys: pytest.CaptureFixture, *argv: str) -> tuple[dict, list[str]]:
    code, out, err = _cli(capsys, "validate", *argv)
    assert code == 0, err
    return yaml.safe_load(out), [line for line in out.splitlines() if line.startswith("# adapted")]


def _config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "my.yaml"
    path.write_text(text)
    return str(path)


def _refused(capsys: pytest.CaptureFixture, *argv: str) -> str:
    code, out, err = _cli(capsys, "validate", *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("scramblebench: error: ")
    return err


def test_images_default_to_the_seeds_setting(capsys, photos) -> None:
    config, _ = _validated(capsys, "--images", str(photos))
    assert config["image_size"] == [224, 224] and config["block_size"] == 16
    assert config["cipher_image_size"] == {} and config["classifier_image_size"] == {}
    blocks = {name: cipher_options(config, name).get("block_size") for name in ("proposed", "le", "ele", "etc", "etc_gray", "pe", "plain", "vit_kiya", "ak_shuffle")}
    assert blocks == {"proposed": 16, "le": 16, "ele": 16, "etc": 16, "etc_gray": 16, "pe": 1, "plain": 1, "vit_kiya": 16, "ak_shuffle": 16}
    assert config["attacks"]["gan"]["batch_size"] == 1  # the quick preset's pixels per GAN step at 224
    # any other dataset keeps the preset's 32 x 32 with 4 x 4 blocks
    quick, _ = _validated(capsys)
    assert quick["image_size"] == [32, 32] and quick["block_size"] is None and quick["ciphers"]["le"]["block_size"] == 4


def test_defaults_adapt_to_a_small_folder_and_say_so(capsys, photos, tmp_path) -> None:
    config, adapted = _validated(capsys, "--images", str(photos))
    assert config["known_pairs"] == 2 and config["ciphertext_ladder"] == [2, 4]  # 8 test images: 2 pairs, 6 scored; 6 + 3 seen
    assert adapted == [
        "# adapted to the data: known_pairs 32 -> 2: dataset images has 8 test images (the known-plaintext pool takes at most a quarter; 6 are scored)",
        "# adapted to the data: ciphertext_ladder [100] -> [2, 4]: an attack sees 9 victim ciphertexts on dataset images (always fitted on all of them too)",
    ]
    code, out, _ = _cli(capsys, "plan", "--images", str(photos), "--out", str(tmp_path / "run"))
    assert code == 0 and "adapted to the data: known_pairs 32 -> 2" in out
    # a user's own value that fits is kept, and the natural preset needs no adaptation
    config, adapted = _validated(capsys, "--images", str(photos), "--config", _config_file(tmp_path, "known_pairs: 5\n"))
    assert config["known_pairs"] == 5 and len(adapted) == 1
    assert _validated(capsys)[1] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("known_pairs: 8\n", "known_pairs: 8 must be below the 8 test images of dataset images"),
        ("ciphertext_ladder: [5, 50]\n", "ciphertext_ladder: 50 is not below the 9 victim ciphertexts"),
        ("n_test: 1\n", "n_test: dataset images gives 1 test image(s); a security cell needs at least 2"),
    ],
)
def test_a_users_count_that_does_not_fit_the_folder_is_refused(capsys, photos, tmp_path, text, message) -> None:
    assert message in _refused(capsys, "--images", str(photos), "--config", _config_file(tmp_path, text))


def test_a_vit_patch_that_is_not_the_block_is_refused(capsys, tmp_path) -> None:
    patch = _config_file(tmp_path, "classifiers: {vit: {model_options: {patch_size: 4}}}\n")
    err = _refused(capsys, "--config", patch, "--block-size", "8")
    assert "classifiers.vit.model_options.patch_size: patch_size 4 differs from the cipher's block_size 8" in err
    assert "(accuracy cell natural / proposed / vit)" in err
    # without the accuracy cells nothing reads the patch
    assert _cli(capsys, "validate", "--config", patch, "--block-size", "8", "--kinds", "key_space,security")[0] == 0


def test_image_and_block_size_flags_set_one_size_and_one_block(capsys, tmp_path) -> None:
    config, _ = _validated(capsys, "--image-size", "48x64", "--block-size", "8")
    assert config["image_size"] == [48, 64] and config["block_size"] == 8
    assert {cipher_options(config, name).get("block_size") for name in ("proposed", "le", "ele", "etc", "etc_gray", "cfe_v1")} == {8}
    assert cipher_options(config, "pe")["block_size"] == 1 and cipher_options(config, "plain")["block_size"] == 1
    # on the paper preset the flag replaces its per-cipher and per-classifier sizes too
    counts = _config_file(tmp_path, "n_train: 20\nn_test: 10\nn_attacker: 10\n")
    paper, _ = _validated(capsys, "--preset", "paper", "--dataset", "natural", "--config", counts, "--image-size", "64")
    assert paper["image_size"] == [64, 64] and paper["cipher_image_size"] == {} and paper["classifier_image_size"] == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--image-size", "0"], "--image-size must be S or HxW"),
        (["--block-size", "x"], "--block-size must be a positive integer"),
        (["--block-size", "12"], "block_size (used by cipher proposed): image_size (32, 32) is not divisible by block_size 12"),
        # a cipher the preset's section does not list is checked at the size its cells use
        (["--image-size", "40", "--ciphers", "cfe_v1", "--kinds", "key_space"], "ciphers.cfe_v1: "),
    ],
)
def test_sizes_that_cannot_run_are_refused(capsys, argv, message) -> None:
    assert message in _refused(capsys, *argv)


def test_the_run_records_and_reports_what_it_adapted(capsys, photos, tmp_path) -> None:
    from harness.results import ResultStore

    out = tmp_path / "run"
    code, text, err = _cli(capsys, "--images", str(photos), "--image-size", "16", "--block-size", "4", "--ciphers", "plain",
                           "--attacks", "none", "--kinds", "security", "--out", str(out), "--progress", "none")
    assert code == 0, err
    assert "adapted to the data: known_pairs 32 -> 2" in text
    run = ResultStore(out).read_run()
    assert run["config"]["known_pairs"] == 2 and run["adapted"][0].startswith("known_pairs 32 -> 2: dataset images has 8 test images")
    assert "- adapted to the data (a preset default that did not fit): known_pairs 32 -> 2" in (out / "report.md").read_text()
    frame = ResultStore(out).load()
    assert set(frame.loc[frame["metric"] == "ssim", "n"]) == {6}  # 8 test images, 2 held out as the pool


def test_model_holder_cells_on_unlabelled_photographs_are_not_applicable_with_the_reason(capsys, photos, tmp_path) -> None:
    """No labels, no accuracy cell, no provider model: the model holder's attacks have nothing to read."""
    from harness.results import ResultStore
    from harness.run.plan import Cell, dependencies

    assert dependencies(Cell("security", "images", "proposed", attack="weights_finetuned")) == ()
    out = tmp_path / "run"
    code, _, err = _cli(capsys, "--images", str(photos), "--image-size", "16", "--block-size", "4", "--ciphers", "proposed",
                        "--attacks", "weights_checkpoint", "--kinds", "security", "--out", str(out), "--progress", "none")
    assert code == 0, err
    row = ResultStore(out).load().iloc[0]
    assert row["status"] == "n/a" and "has no labels" in row["note"]


@pytest.mark.slow
def test_fifteen_real_photographs_at_224_complete_without_a_resists_verdict(capsys, tmp_path) -> None:
    """The whole default grid on 15 full-size photographs (OpenCV samples, MATE and KDE wallpapers):
    about 15 minutes on 2 loaded cores (docs/benchmark.md)."""
    from harness.results import ResultStore
    from tests.photos import _FILES, missing_sources

    if missing_sources(("opencv_samples", "mate_nature", "plasma_photos")):
        pytest.skip(f"photo sources missing: {missing_sources()}")
    folder = tmp_path / "photos"
    folder.mkdir()
    files = [*_FILES["opencv_samples"][1][:8], *_FILES["mate_nature"][1][:4], *_FILES["plasma_photos"][1][:3]]
    for index, path in enumerate(files):
        (folder / f"{index:02d}{path.suffix}").write_bytes(path.read_bytes())
    out = tmp_path / "run"
    code, _, err = _cli(capsys, "--images", str(folder), "--kinds", "key_space,security", "--out", str(out), "--progress", "none")
    assert code == 0, err
    frame = ResultStore(out).load()
    assert "failed" not in set(frame["status"])
    assert set(frame.loc[frame["metric"] == "ssim", "n"].dropna()) == {6}
    verdicts = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("|")]
    assert not any("✓ resists" in line for line in verdicts)  # 6 scored images: a key recovery is ✗, the rest ?
