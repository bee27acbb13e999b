"""The plugin registry: decorator, lookup, did-you-mean, fnmatch, duplicates and entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.registry import BUILTIN, Declaration, Registry, attacks, ciphers, classifiers

REPO = Path(__file__).resolve().parents[1]


def _write_home_package(root: Path, group: str) -> None:
    """A throwaway home package with its own registry and one built-in plugin."""
    home = root / "fakehome"
    home.mkdir()
    (home / "__init__.py").write_text(
        f"from harness.registry import Registry\nwidgets = Registry('widget', 'fakehome', {group!r})\n"
    )
    (home / "alpha.py").write_text(
        "from fakehome import widgets\n\n@widgets.register('alpha', 'first')\nclass Alpha:\n    pass\n"
    )


def _write_distribution(root: Path, group: str, entries: dict[str, str], modules: dict[str, str]) -> None:
    """A fake installed distribution: a .dist-info folder on sys.path, no pip needed."""
    info = root / "fakeplug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def widgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    group = f"scramblebench.test_widgets_{tmp_path.name}"
    _write_home_package(tmp_path, group)
    _write_distribution(
        tmp_path,
        group,
        {
            "beta": "fakeplug_good:Beta",
            "alpha": "fakeplug_good:Impostor",
            "broken": "fakeplug_broken:Gamma",
        },
        {
            "fakeplug_good": "class Beta:\n    pass\n\nclass Impostor:\n    pass\n",
            "fakeplug_broken": "raise ImportError('needs a library that is not installed')\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("fakehome", "fakehome.alpha", "fakeplug_good", "fakeplug_broken"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    import fakehome

    return fakehome.widgets


def test_builtins_and_plugins_are_discovered(widgets: Registry) -> None:
    assert widgets.names() == ["alpha", "beta"]
    assert widgets.get("first") is widgets.get("alpha")
    assert widgets.entry("alpha").origin == "builtin"
    assert widgets.entry("beta").origin == "fakeplug"


def test_builtins_are_read_from_source_and_imported_when_asked_for(widgets: Registry) -> None:
    assert widgets.names() == ["alpha", "beta"] and "first" in widgets
    assert widgets.describe("first") == Declaration("alpha", ("first",), "fakehome.alpha", "Alpha")
    assert "fakehome.alpha" not in sys.modules  # listing imported nothing
    assert widgets.get("first").__module__ == "fakehome.alpha"
    assert widgets.describe("alpha").target == "fakehome.alpha.Alpha" and widgets.entry("alpha").origin == BUILTIN


@pytest.mark.parametrize("registry", [ciphers, attacks, classifiers], ids=lambda r: r.kind)
def test_what_the_source_declares_is_what_importing_registers(registry: Registry) -> None:
    """``list`` shows the declarations read from source; importing every module must agree."""
    unread = Registry(registry.kind, registry.home_package, f"{registry.group}.none")  # a fresh one: nothing imported
    declared = {n: unread.describe(n) for n in unread.names()}
    assert all(isinstance(d, Declaration) for d in declared.values())
    registered = {n: registry.entry(n) for n in registry.names() if registry.entry(n).origin == BUILTIN}
    assert {n: d.target for n, d in declared.items()} == {n: e.target for n, e in registered.items()}
    assert {a: n for n, d in declared.items() for a in d.aliases} == {
        a: n for a, n in registry._aliases.items() if n in registered
    }


def test_a_declaration_that_importing_does_not_register_is_a_clear_error(widgets: Registry, tmp_path: Path) -> None:
    (tmp_path / "fakehome" / "delta.py").write_text(
        "from harness.registry import Registry\n\nother = Registry('gadget', 'fakehome', 'none')\n\n"
        "@other.register('delta')\nclass Delta:\n    pass\n"
    )
    assert "delta" in widgets.names()  # the source says so; only importing it shows the registry is another one
    with pytest.raises(ImportError, match="fakehome.delta declares widget 'delta' on class Delta in its source, but importing"):
        widgets.get("delta")


def test_builtin_wins_and_conflict_is_reported(widgets: Registry) -> None:
    assert widgets.get("alpha").__name__ == "Alpha"
    assert "is a built-in" in widgets.load_errors["alpha"]


def test_broken_plugin_is_reported_not_fatal(widgets: Registry) -> None:
    widgets.names()
    assert "ImportError" in widgets.load_errors["broken"]
    assert "needs a library" in widgets.load_errors["broken"]
    assert "broken" not in widgets


def test_unknown_name_suggests_close_matches(widgets: Registry) -> None:
    with pytest.raises(KeyError, match="Did you mean 'alpha'"):
        widgets.get("alpah")


def test_names_filter_with_fnmatch(widgets: Registry) -> None:
    assert widgets.names("b*") == ["beta"]
    assert widgets.names("z*") == []


def test_duplicate_names_are_rejected(widgets: Registry) -> None:
    widgets.names()
    with pytest.raises(ValueError, match="already registered"):
        widgets.register("alpha")(type("Other", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        widgets.register("gamma", "first")(type("Other", (), {}))


@pytest.mark.parametrize("bad", ["Upper", "two words", "a,b", "wild*", ""])
def test_bad_names_are_rejected(bad: str) -> None:
    registry = Registry("thing", "ciphers", "scramblebench.none")
    with pytest.raises(ValueError, match="lowercase"):
        registry.register(bad)(type("Thing", (), {}))


def test_project_registries_hold_their_builtins() -> None:
    assert {"plain", "proposed"} <= set(ciphers.names())
    assert ciphers.entry("proposed").module == "ciphers.proposed"
    assert attacks.kind == "attack" and classifiers.kind == "classifier"


def test_example_plugin_package_registers_through_its_entry_point(tmp_path: Path) -> None:
    """docs/plugins.md's separate-package example, installed as a fake dist-info, joins the registry."""
    example = REPO / "examples" / "channel_swap_plugin"
    _write_distribution(
        tmp_path,
        "scramblebench.ciphers",
        {"channel_swap": "scramblebench_channel_swap:ChannelSwapCipher"},
        {},
    )
    code = (
        "import torch\n"
        "from harness.registry import ciphers\n"
        "from harness import create_cipher\n"
        "cipher = create_cipher('channel_swap', image_size=(4, 4), seed=1)\n"
        "x = torch.arange(48, dtype=torch.uint8).view(1, 3, 4, 4)\n"
        "assert torch.equal(cipher.decrypt(cipher.encrypt(x)), x)\n"
        "print(ciphers.entry('channel_swap').origin, 'channel_swap' in ciphers.names())\n"
    )
    env_path = f"{tmp_path}:{example}:{REPO}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": env_path}, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fakeplug True"


def test_a_user_folder_shadowing_a_home_package_fails_loudly(tmp_path) -> None:
    import subprocess
    import sys

    (tmp_path / "attacks").mkdir()
    (tmp_path / "attacks" / "__init__.py").write_text("")  # a user project's own attacks/ package
    code = "from harness.registry import attacks; print(attacks.names())"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "shadows it" in result.stderr and str(tmp_path / "attacks") in result.stderr


def test_example_plugin_passes_the_shipped_conformance_suites(tmp_path: Path) -> None:
    """The separate-package example, installed (as a fake dist-info), run through the installed suites."""
    example = REPO / "examples" / "channel_swap_plugin"
    _write_distribution(tmp_path, "scramblebench.ciphers", {"channel_swap": "scramblebench_channel_swap:ChannelSwapCipher"}, {})
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "harness.conformance.plugin",
               "--pyargs", "harness.conformance.test_cipher_contract",
               "harness.conformance.test_attack_contract", "-k", "channel_swap"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600,
                            env={"PYTHONPATH": f"{tmp_path}:{example}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    passed = int(result.stdout.strip().splitlines()[-1].split(" passed")[0].split()[-1])
    assert passed >= 15, result.stdout[-500:]
