"""Plugin contracts checked at run time (docs/plugins.md): broken ciphers and attacks, registered
for the test, fail their own cells with a note naming the plugin and the contract, the other cells
run and the report is written (exit 1); ``validate`` and ``plan`` name them and exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attacks.none import NoAttack
from ciphers.base import Traits
from ciphers.plain import PlainCipher
from harness.registry import Entry, Registry, attacks, ciphers
from harness.results import ResultStore
from harness.run.cli import main

CONFIG = {"n_train": 8, "n_test": 8, "n_attacker": 4, "image_size": [16, 16], "examples": 2, "known_pairs": 2, "ciphertext_ladder": []}


class _Xor(PlainCipher):
    """A sound value-only cipher: every byte XOR 0x5A."""

    traits = Traits(keystream="xor")

    def _encrypt(self, images, image_ids=None):
        return images ^ 0x5A

    def _decrypt(self, ciphertexts, image_ids=None):
        return ciphertexts ^ 0x5A

    def key_space(self) -> int:
        return 256


class _FloatOut(_Xor):
    def _encrypt(self, images, image_ids=None):
        return (images ^ 0x5A).float()


class _Cropped(_Xor):
    def _encrypt(self, images, image_ids=None):
        return (images ^ 0x5A)[..., : images.shape[-1] // 2].contiguous()


class _NonInvertible(_Xor):
    def _decrypt(self, ciphertexts, image_ids=None):
        return ciphertexts.clone()


class _NanKeySpace(_Xor):
    def key_space(self):
        return float("nan")


class _DeclaredPlain(_Xor):
    traits = Traits()  # says it changes nothing: it would be taken for `plain`


class _NanRestore(NoAttack):
    def _restore(self, ciphertexts):
        return torch.full(ciphertexts.shape, float("nan"))


class _WrongShape(NoAttack):
    def _restore(self, ciphertexts):
        return ciphertexts[..., :-1]


class _Undeclared(NoAttack):
    threat_model = "known-plaintext"  # without uses_known_pairs


#: (registry, name, class, what its violation note says)
BROKEN_CIPHERS = {
    "float_out": (_FloatOut, "encrypt returned torch.float32, expected torch.uint8"),
    "cropped": (_Cropped, "encrypt returned shape (3, 3, 16, 8) for input (3, 3, 16, 16), expected (3, 3, 16, 16)"),
    "non_invertible": (_NonInvertible, "decrypt(encrypt(x)) differs from x by up to"),
    "nan_key_space": (_NanKeySpace, "key_space() returned nan (float), expected an exact int >= 1"),
    "declared_plain": (_DeclaredPlain, "it declares no trait that changes images"),
}
BROKEN_ATTACKS = {
    "nan_restore": (_NanRestore, "restore returned torch.float32 with NaN or infinite values, expected torch.uint8"),
    "wrong_shape": (_WrongShape, "restore returned shape (6, 3, 16, 15), expected (6, 3, 16, 16)"),
    "undeclared": (_Undeclared, "threat_model 'known-plaintext' disagrees with uses_known_pairs = False"),
}


def _register(monkeypatch: pytest.MonkeyPatch, registry: Registry, name: str, cls: type) -> None:
    registry.names()  # the built-ins first, so they are not loaded over the test's entries
    monkeypatch.setattr(cls, "registry_name", name, raising=False)
    monkeypatch.setitem(registry._entries, name, Entry(name, cls, "test", cls.__module__))


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, ciphers, "xor_ok", _Xor)
    for name, (cls, _) in BROKEN_CIPHERS.items():
        _register(monkeypatch, ciphers, name, cls)
    for name, (cls, _) in BROKEN_ATTACKS.items():
        _register(monkeypatch, attacks, name, cls)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(CONFIG))
    return path


def _main(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """The CLI in this process; runs pass ``--in-process``, since the plugins are registered here only."""
    lines: list[str] = []
    code = main(list(argv), stdout=lines.append)
    return code, "\n".join(lines), capsys.readouterr().err


def test_broken_ciphers_fail_their_cells_with_the_contract_and_the_rest_runs(capsys, tmp_path, config, broken) -> None:
    out = tmp_path / "run"
    code, text, err = _main(capsys, "--config", str(config), "--ciphers", ",".join(["plain", "xor_ok", *BROKEN_CIPHERS]),
                            "--attacks", "none", "--kinds", "key_space,security", "--progress", "none", "--in-process", "--out", str(out))
    assert code == 1 and "Traceback" not in err and (out / "report.md").is_file(), err
    frame = ResultStore(out).load()
    for name, (_, broke) in BROKEN_CIPHERS.items():
        rows = frame[frame["cipher"] == name]
        assert set(rows["kind"]) == {"key_space", "security"} and set(rows["status"]) == {"failed"}
        assert all(f"cipher '{name}' broke its contract: {broke}" in note for note in rows["note"]), rows["note"].tolist()
    sound = frame[frame["cipher"].isin(["plain", "xor_ok"])]
    assert set(sound["status"]) == {"ok"} and set(sound["kind"]) == {"key_space", "security"}
    key_spaces = ResultStore(out).read_run()["key_spaces"]
    assert key_spaces["nan_key_space"]["nominal"] is None and "key_space() returned nan" in key_spaces["nan_key_space"]["contract"]
    assert key_spaces["xor_ok"]["nominal"] == "256"


def test_broken_attacks_fail_their_cells_with_the_contract_and_the_rest_runs(capsys, tmp_path, config, broken) -> None:
    out = tmp_path / "run"
    code, _, err = _main(capsys, "--config", str(config), "--ciphers", "plain,xor_ok", "--attacks", ",".join(["none", *BROKEN_ATTACKS]),
                         "--kinds", "key_space,security", "--progress", "none", "--in-process", "--out", str(out))
    assert code == 1 and (out / "report.md").is_file(), err
    frame = ResultStore(out).load()
    for name, (_, broke) in BROKEN_ATTACKS.items():
        rows = frame[frame["attack"] == name]
        assert set(rows["cipher"]) == {"plain", "xor_ok"} and set(rows["status"]) == {"failed"}
        assert all(f"attack '{name}' broke its contract: {broke}" in note for note in rows["note"]), rows["note"].tolist()
    assert set(frame[~frame["attack"].isin(list(BROKEN_ATTACKS))]["status"]) == {"ok"}


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_plan_name_each_broken_plugin_and_exit_1(capsys, tmp_path, config, broken, command) -> None:
    """A restoration is checked where a cell receives it (fitting is a cell's cost): before the grid
    an attack is checked on its declarations only."""
    argv = ["--config", str(config), "--ciphers", ",".join(["plain", "xor_ok", *BROKEN_CIPHERS]), "--attacks", ",".join(["none", *BROKEN_ATTACKS]),
            "--kinds", "key_space,security"] + (["--out", str(tmp_path / "run")] if command == "plan" else [])
    code, text, err = _main(capsys, command, *argv)
    expected = [f"scramblebench: cipher '{n}' broke its contract: " for n in BROKEN_CIPHERS] + ["scramblebench: attack 'undeclared' broke its contract: "]
    lines = err.splitlines()
    assert code == 1 and len(lines) == len(expected), err
    for line, start in zip(lines, expected):
        assert line.startswith(start)
    assert BROKEN_CIPHERS["float_out"][1] in err and BROKEN_ATTACKS["undeclared"][1] in err
    assert not (tmp_path / "run").exists()
    if command == "validate":
        assert text.endswith("# invalid: 35 cells, 6 plugin(s) broke their contract")
    sound = ["--config", str(config), "--ciphers", "plain,xor_ok", "--attacks", "none,nan_restore", "--kinds", "key_space,security"]
    assert _main(capsys, command, *sound, *argv[-2:] if command == "plan" else [])[::2] == (0, "")
