"""The configuration schema: numbers, nested keys, plugin names, list fields, presets, image sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.run.cli import main
from harness.run.config import MAX_SEED, ConfigError, validate_config
from harness.run.config import QUICK, resolve_config


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _resolve(tmp_path: Path, text: str, preset: str | None = None, **overrides) -> dict:
    return resolve_config(preset, _file(tmp_path, text), overrides)


# -- numbers are numbers ----------------------------------------------------------------------
def test_yaml_numeric_strings_are_coerced_for_numeric_fields(tmp_path) -> None:
    assert yaml.safe_load("lr: 1e-3")["lr"] == "1e-3"  # YAML 1.1: a string
    config = _resolve(tmp_path, "classifiers: {vit: {lr: 1e-3, epochs: '3'}}\nattacks: {itn: {lr: 3e-4, betas: [5e-1, '0.9']}}\nverdict_margin: '0.5'\n")
    assert config["classifiers"]["vit"]["lr"] == 0.001 and isinstance(config["classifiers"]["vit"]["lr"], float)
    assert config["classifiers"]["vit"]["epochs"] == 3
    assert config["attacks"]["itn"]["lr"] == 3e-4 and config["attacks"]["itn"]["betas"] == [0.5, 0.9]
    assert config["verdict_margin"] == 0.5
    assert config["classifiers"]["vit"]["batch_size"] == 128  # the preset's other keys stay


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("classifiers: {vit: {lr: fast}}", "classifiers.vit.lr: must be a number, got 'fast'"),
        ("classifiers: {vit: {epochs: 2.5}}", "classifiers.vit.epochs: must be an integer"),
        ("classifiers: {vit: {nesterov: maybe}}", "classifiers.vit.nesterov: must be true or false"),
        ("attacks: {gan: {betas: [0.5]}}", "attacks.gan.betas: must be a list of 2 values"),
        ("n_train: lots", "n_train: must be an integer >= 1, got 'lots'"),
        ("verdict_margin: 2", "verdict_margin: must be a number in [0.0, 1.0]"),
        ("ciphertext_ladder: [10, x]", "ciphertext_ladder[1]: must be an integer"),
        ("accuracy_seeds: 0", "accuracy_seeds: must be an integer >= 1"),
        ("classifiers: {vit: {epochs: 0}}", "classifiers.vit: epochs must be an integer >= 1"),
        ("attacks: {itn: {loss: l3}}", "attacks.itn: loss must be one of"),
        ("classifiers: {vit: {compile: sometimes}}", "classifiers.vit: compile must be true, false or auto, got 'sometimes'"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, message) -> None:
    with pytest.raises(ConfigError) as error:
        _resolve(tmp_path, text + "\n")
    assert message in str(error.value)


def test_compile_is_true_false_or_auto_per_classifier(tmp_path) -> None:
    config = _resolve(tmp_path, "classifiers: {vit: {compile: 'yes'}, resnet18: {compile: false}, shakedrop: {compile: AUTO}}\n")
    assert [config["classifiers"][name]["compile"] for name in ("vit", "resnet18", "shakedrop")] == [True, False, "auto"]


# -- nested keys ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "path", "allowed"),
    [
        ("classifiers: {vit: {epoch: 3}}", "classifiers.vit.epoch", "Did you mean 'epochs'?"),
        ("attacks: {itn: {batchsize: 8}}", "attacks.itn.batchsize", "Did you mean 'batch_size'?"),
        ("ciphers: {le: {blocksize: 4}}", "ciphers.le.blocksize", "Allowed keys: block_size"),
        ("ciphers: {le: {key_condition: diff_key}}", "ciphers.le.key_condition", "Allowed keys: block_size"),
        ("ciphers: {pe: {key_conditon: same_key}}", "ciphers.pe.key_conditon", "Allowed keys: block_size, transport, key_condition"),
        ("classifiers: {vit: {model_options: {sise: nano}}}", "classifiers.vit.model_options.sise", "Did you mean 'size'?"),
        ("attacks: {fr: {params: {mod: basic}}}", "attacks.fr.params.mod", "Allowed: mode"),
        (
            "classifiers: {adaptation: {model_options: {backbone_options: {dept: 8}}}}",
            "classifiers.adaptation.model_options.backbone_options.dept",
            "Did you mean 'depth'?",
        ),
    ],
)
def test_a_typo_in_a_nested_key_names_the_path_and_the_allowed_keys(tmp_path, text, path, allowed) -> None:
    with pytest.raises(ConfigError) as error:
        _resolve(tmp_path, text + "\n")
    assert str(error.value).startswith(f"{path}: unknown") and allowed in str(error.value)


def test_allowed_keys_are_listed(tmp_path) -> None:
    with pytest.raises(ConfigError, match="Allowed keys: .*batch_size.*epochs.*model_options"):
        _resolve(tmp_path, "classifiers: {vit: {epoch: 3}}\n")


def test_sections_the_runner_would_ignore_or_override_are_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="classifiers.vit_keyed: vit_keyed is derived from vit .* classifiers.vit"):
        _resolve(tmp_path, "classifiers: {vit_keyed: {epochs: 1}}\n")
    with pytest.raises(ConfigError, match="attacks.kpa.known_pairs: set the top-level known_pairs"):
        _resolve(tmp_path, "attacks: {kpa: {known_pairs: 4}}\n")


def test_a_block_size_that_does_not_fit_the_image_size_fails_at_load_time(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"ciphers.proposed: .*at image size 32 x 32"):
        _resolve(tmp_path, "ciphers: {proposed: {block_size: 5}}\n")
    # also at a paired classifier's own size (accuracy cells run the cipher there)
    with pytest.raises(ConfigError, match=r"ciphers.proposed: .*at image size 36 x 36"):
        _resolve(tmp_path, "ciphers: {proposed: {block_size: 8}}\nclassifier_image_size: {vit: [36, 36]}\n")


def test_unknown_top_level_key_has_a_hint(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['n_trian'\]. Did you mean 'n_train'\?"):
        _resolve(tmp_path, "n_trian: 5\n")


# -- plugin names -----------------------------------------------------------------------------
def test_aliases_are_resolved_to_registered_names(tmp_path) -> None:
    config = _resolve(
        tmp_path,
        "ciphers: {vit_blockwise: {block_size: 8}}\npairings: {vit_blockwise: [vit]}\n"
        "cipher_image_size: {vit_blockwise: [64, 64]}\nattacks: {sia_gan: {epochs: 1}}\n",
    )
    assert config["ciphers"]["proposed"] == {"block_size": 8} and "vit_blockwise" not in config["ciphers"]
    assert config["pairings"]["proposed"] == ["vit"] and config["cipher_image_size"] == {"proposed": [64, 64]}
    assert config["attacks"]["gan"]["epochs"] == 1 and config["attacks"]["gan"]["batch_size"] == 32  # merged into the preset's
    assert "sia_gan" not in config["attacks"]


def test_an_alias_and_its_name_together_are_an_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="'proposed' name the same cipher"):
        _resolve(tmp_path, "ciphers: {vit_blockwise: {block_size: 8}, proposed: {block_size: 4}}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ciphers: {proposd: {}}", "ciphers.proposd: unknown cipher 'proposd'. Did you mean 'proposed'"),
        ("pairings: {le: [adaptaton]}", "pairings.le[0]: unknown classifier 'adaptaton'. Did you mean 'adaptation'"),
        ("attacks: {itm: {epochs: 1}}", "attacks.itm: unknown attack 'itm'. Did you mean 'itn'"),
        ("default_classifiers: resnet", "default_classifiers[0]: unknown classifier 'resnet'"),
        ("classifier_image_size: {vitt: [32, 32]}", "classifier_image_size.vitt: unknown classifier"),
        ("datasets: [natura]", "datasets[0]: unknown dataset 'natura'. Did you mean 'natural'"),
    ],
)
def test_unknown_plugin_names_are_errors_with_did_you_mean(tmp_path, text, message) -> None:
    with pytest.raises(ConfigError) as error:
        _resolve(tmp_path, text + "\n")
    assert message in str(error.value)


# -- list fields --------------------------------------------------------------------------------
def test_a_string_in_a_list_field_is_one_name_not_its_letters(tmp_path) -> None:
    config = _resolve(tmp_path, "datasets: natural\ndefault_classifiers: vit\npairings: {le: adaptation}\n")
    assert config["datasets"] == ["natural"]
    assert config["default_classifiers"] == ["vit"] and config["pairings"]["le"] == ["adaptation"]
    assert _resolve(tmp_path, "datasets: natural, natural\n")["datasets"] == ["natural"]


# -- presets ----------------------------------------------------------------------------------
def test_preset_in_the_file_selects_the_base(tmp_path) -> None:
    config = _resolve(tmp_path, "preset: paper\nknown_pairs: 3\n", data_dir=str(tmp_path))
    assert config["preset"] == "paper" and config["datasets"] == ["cifar10", "cifar100"]
    assert config["ciphers"]["proposed"]["block_size"] == 16 and config["known_pairs"] == 3
    assert config["classifiers"]["vit"]["model_options"]["size"] == "base"
    assert _resolve(tmp_path, "preset: paper\n", "paper", data_dir=str(tmp_path))["preset"] == "paper"  # agreeing is fine
    assert _resolve(tmp_path, "seed: 1\n", "paper", data_dir=str(tmp_path))["preset"] == "paper"


def test_explicit_preset_conflicting_with_the_file_is_an_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--preset quick conflicts with 'preset: paper'"):
        _resolve(tmp_path, "preset: paper\n", "quick")
    with pytest.raises(ConfigError, match="preset: unknown preset 'huge'"):
        _resolve(tmp_path, "preset: huge\n")


def test_datasets_read_from_a_folder_need_data_dir(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"data_dir: dataset cifar10 is read from a local folder"):
        _resolve(tmp_path, "preset: paper\n")
    with pytest.raises(ConfigError, match="n_train: the natural dataset draws crops"):
        _resolve(tmp_path, "n_train: null\n")


# -- image sizes and seeds ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image_size: 32", "image_size: must be a pair [H, W] of positive integers, got 32"),
        ("image_size: [32]", "image_size: must be a pair"),
        ("image_size: [0, 32]", "image_size[0]: must be an integer >= 1"),
        ("cipher_image_size: {proposed: 224}", "cipher_image_size.proposed: must be a pair"),
        ("classifier_image_size: {vit: [16, x]}", "classifier_image_size.vit[1]: must be an integer"),
    ],
)
def test_malformed_image_sizes_are_rejected(tmp_path, text, message) -> None:
    with pytest.raises(ConfigError) as error:
        _resolve(tmp_path, text + "\n")
    assert message in str(error.value)


def test_image_size_strings_are_coerced(tmp_path) -> None:
    assert _resolve(tmp_path, "image_size: ['16', 16]\n")["image_size"] == [16, 16]


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, "x", True, 1.5])
def test_out_of_range_seeds_are_rejected(seed) -> None:
    with pytest.raises(ConfigError, match=r"seed: must be an integer in \[0, 9223372036854775807\]"):
        validate_config({**QUICK, "seed": seed})


def test_seed_limits_and_origin() -> None:
    assert validate_config({**QUICK, "seed": MAX_SEED})["seed"] == MAX_SEED
    assert validate_config({**QUICK, "seed": "7"})["seed"] == 7
    with pytest.raises(ConfigError, match=r"\(set by --seed\)$"):
        resolve_config(None, None, {"seed": -1}, origin={"seed": "--seed"})


def test_presets_are_valid_and_unchanged_by_validation() -> None:
    assert validate_config(QUICK) == QUICK


# -- the command line ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "classifiers: {vit: {epoch: 3}}",
        "attacks: {itn: {batchsize: 8}}",
        "ciphers: {le: {blocksize: 4}}",
        "image_size: 32",
        "classifiers: {vit: {lr: fast}}",
        "ciphers: {proposd: {}}",
        "[1, 2]",
        "a: [",
    ],
)
@pytest.mark.parametrize("command", [["--dry-run"], ["plan"], ["validate"], ["run"]])
def test_config_errors_exit_2_with_one_line_before_any_cell_runs(capsys, tmp_path, text, command) -> None:
    out = tmp_path / "run"
    code = main([*command, "--config", str(_file(tmp_path, text + "\n")), *([] if "validate" in command else ["--out", str(out)])], stdout=lambda line: None)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("scramblebench: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()  # nothing ran, no run folder was made


def test_the_schema_declares_every_key_each_preset_sets() -> None:
    from harness.run.config import KEYS, PRESETS
    from harness.run.config.schema import PRESET_NAMES

    assert set(PRESETS) == set(PRESET_NAMES)
    for preset in PRESETS.values():
        assert set(preset) == set(KEYS)
