"""The lossy channel between user and provider (``transport: {jpeg: Q}``): the JPEG it applies equals
Pillow's, every ciphertext anyone sees goes through it, and a run with it gives accuracy, security
and channel-PSNR rows whose report names the channel."""

from __future__ import annotations

import copy
import re
import io
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from attacks.base import CipherFamily
from harness.data import load_dataset
from harness.registry import attacks, create_cipher, name_of
from harness.run.cli import main
from harness.run.config import PRESETS
from harness.run.config.schema import ConfigError, validate_config
from harness.run.identity import cell_inputs
from harness.run.plan import Cell, cipher_options
from harness.transport import Jpeg, Received, unwrapped


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return load_dataset("natural", "test", (32, 32), n=6, seed=0).batch(torch.arange(6))


def _pillow_jpeg(images: torch.Tensor, quality: int, subsampling: int) -> torch.Tensor:
    out = []
    for image in images:
        array = image.permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
        out.append(np.array(Image.open(buffer)).reshape(array.shape))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


@pytest.mark.parametrize(("chroma", "subsampling"), [("4:2:0", 2), ("4:4:4", 0)])
@pytest.mark.parametrize("quality", [50, 90])
def test_the_channel_equals_pillows_jpeg_in_rgb_order(photos, quality, chroma, subsampling) -> None:
    arrived = Jpeg(quality, chroma)(photos)
    assert torch.equal(arrived, _pillow_jpeg(photos, quality, subsampling))
    assert not torch.equal(arrived, photos) and arrived.dtype == torch.uint8


def test_one_channel_ciphertexts_travel_as_grayscale_jpeg(photos) -> None:
    strip = photos[:, :1]
    assert torch.equal(Jpeg(75)(strip), _pillow_jpeg(strip, 75, 2))


def test_every_encryption_goes_through_the_channel_and_decrypt_is_the_ciphers(photos) -> None:
    inner = create_cipher("etc", (32, 32), 4, seed=3)
    cipher = create_cipher("etc", (32, 32), 4, seed=3, transport={"jpeg": 90})
    assert isinstance(cipher, Received) and unwrapped(cipher).key().keys() == inner.key().keys()
    assert torch.equal(cipher.encrypt(photos), Jpeg(90)(inner.encrypt(photos)))
    received = cipher.encrypt(photos)
    assert torch.equal(cipher.decrypt(received), inner.decrypt(received))
    # what the report and the plan see is the cipher's
    assert name_of(cipher) == "etc" and cipher.traits == inner.traits and cipher.key_space() == inner.key_space()
    # a key rebuilt from a recovered one stays behind the channel, so checks compare like with like
    assert torch.equal(cipher.rebuild(**inner.key()).encrypt(photos), received)
    assert torch.equal(pickle.loads(pickle.dumps(cipher)).encrypt(photos), received)


def test_the_attackers_own_encryptions_go_through_the_channel(photos) -> None:
    family = CipherFamily("le", (32, 32), 4, {"transport": {"jpeg": 80}})
    drawn = family.draw(5)
    assert isinstance(drawn, Received)
    assert torch.equal(drawn.encrypt(photos), Jpeg(80)(unwrapped(drawn).encrypt(photos)))
    assert family.to_dict()["options"] == {"transport": {"jpeg": 80}}


def _config(**changes) -> dict:
    config = copy.deepcopy(PRESETS["quick"])
    config.update(changes)
    return config


def test_kpa_does_not_claim_a_lossy_channel_resists() -> None:
    """Its solvers are exact: through JPEG they would find no key, and that is no evidence of security."""
    assert "lossy channel" in attacks.get("kpa").applies_to(CipherFamily("etc", (32, 32), 4, {"transport": {"jpeg": 90}}))
    assert attacks.get("kpa").applies_to(CipherFamily("etc", (32, 32), 4)) is None


def test_a_ciphers_own_transport_wins_over_the_runs() -> None:
    config = _config(transport={"jpeg": 90})
    config["ciphers"]["etc"]["transport"] = {"jpeg": 50, "chroma": "4:4:4"}
    config["ciphers"]["le"]["transport"] = None
    config = validate_config(config)
    assert cipher_options(config, "ele")["transport"] == {"jpeg": 90}
    assert cipher_options(config, "etc")["transport"] == {"jpeg": 50, "chroma": "4:4:4"}
    assert cipher_options(config, "le").get("transport") is None


@pytest.mark.parametrize(
    ("transport", "message"),
    [
        ({"jpeg": 0}, "transport.jpeg must be an integer quality in 1..100, got 0"),
        ({"jpeg": 90.5}, "transport.jpeg must be an integer quality"),
        ({"png": 3}, "transport: the only channel is jpeg"),
        ({"jpeg": 90, "chroma": "4:2:2"}, "transport.chroma must be one of 4:2:0, 4:4:4"),
        ("jpeg", "transport must be a mapping like {jpeg: 90} or null"),
    ],
)
def test_a_bad_transport_is_one_clear_error(transport, message) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        validate_config(_config(transport=transport))


def test_the_channel_is_part_of_a_cells_inputs_and_absent_without_one() -> None:
    cell = Cell("security", "natural", "etc", attack="none")
    exact = cell_inputs(validate_config(_config()), cell)
    lossy = cell_inputs(validate_config(_config(transport={"jpeg": 90})), cell)
    assert "transport" not in exact["cipher"]["options"]
    assert lossy["cipher"]["options"]["transport"] == {"jpeg": 90}


def test_a_jpeg_run_gives_accuracy_security_and_channel_rows_for_etc_and_cfe(tmp_path: Path, capsys) -> None:
    config = tmp_path / "jpeg.yaml"
    config.write_text(
        "n_train: 24\nn_test: 36\nn_attacker: 12\nimage_size: [32, 32]\nexamples: 2\nknown_pairs: 4\nciphertext_ladder: [10]\n"
        "transport: {jpeg: 90}\nclassifiers:\n  shakedrop: {epochs: 1, batch_size: 12, model_options: {depth: 8, alpha: 24}}\n"
        "  resnet18: {epochs: 1, batch_size: 12, model_options: {width: 8}}\n"
        "  vit: {epochs: 1, batch_size: 12, model_options: {size: nano, depth: 1}}\n"
    )
    out = tmp_path / "run"
    code = main(["--config", str(config), "--ciphers", "plain,etc,cfe", "--classifiers", "resnet18,shakedrop,vit",
                 "--attacks", "none,fr", "--out", str(out), "--progress", "none"], stdout=lambda line: None)
    assert code == 0, capsys.readouterr().err
    frame = pd.read_csv(out / "results.csv")
    for cipher in ("etc", "cfe_v2"):
        rows = frame[frame["cipher"] == cipher]
        assert (rows[rows["kind"] == "accuracy"]["metric"] == "accuracy").any()
        assert {"none", "fr"} <= set(rows[(rows["kind"] == "security") & (rows["status"] == "ok")]["attack"])
        channel = rows[rows["metric"] == "transport_psnr"]
        assert len(channel) == 1 and 20 < channel["value"].iloc[0] < 60 and "JPEG Q90 (4:2:0)" in channel["note"].iloc[0]
    report = (out / "report.md").read_text()
    assert "transport to the provider" in report and "JPEG Q90 (4:2:0)" in report and "PSNR of decrypt(received), dB" in report
