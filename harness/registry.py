"""Plugin registries: one catalogue per kind (ciphers, attacks, classifiers).

A plugin is a class decorated with ``@<registry>.register("name", *aliases)``.  Built-in
plugins are every module of the registry's home package, imported on first use, so adding a
plugin never means editing a list.  Installed third-party packages add plugins through the
entry-point groups ``scramblebench.ciphers`` / ``.attacks`` / ``.classifiers``; built-ins win
over a same-named plugin, and a plugin that fails to import is recorded, not fatal.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

BUILTIN = "builtin"


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered plugin and where it came from (``builtin`` or a distribution name)."""

    name: str
    obj: type[T]
    origin: str
    module: str


class Registry(Generic[T]):
    """Name -> class catalogue with aliases, fnmatch listing and entry-point discovery."""

    def __init__(self, kind: str, home_package: str, group: str) -> None:
        self.kind = kind
        self.home_package = home_package
        self.group = group
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._loading_origin = BUILTIN
        self._loaded = False
        self.load_errors: dict[str, str] = {}

    # -- registration -----------------------------------------------------------------
    def register(self, name: str, *aliases: str) -> Callable[[type[T]], type[T]]:
        """Class decorator registering ``cls`` under ``name`` (and ``aliases``)."""

        def decorator(cls: type[T]) -> type[T]:
            self._add(name, aliases, cls)
            return cls

        return decorator

    def _add(self, name: str, aliases: tuple[str, ...], cls: type[T]) -> None:
        for key in (name, *aliases):
            if not key or key != key.lower() or any(ch in key for ch in ",*?[] "):
                raise ValueError(
                    f"{self.kind} name {key!r} must be a non-empty lowercase word "
                    "without commas, spaces or wildcard characters"
                )
            if key in self._entries or key in self._aliases:
                existing = self._resolve(key)
                raise ValueError(
                    f"{self.kind} name {key!r} is already registered by "
                    f"{existing.module}.{existing.obj.__qualname__}"
                )
        self._entries[name] = Entry(name, cls, self._loading_origin, cls.__module__)
        for alias in aliases:
            self._aliases[alias] = name
        cls.registry_name = name  # type: ignore[attr-defined]

    # -- lookup -----------------------------------------------------------------------
    def get(self, name: str) -> type[T]:
        """The class registered under ``name`` or an alias; did-you-mean error otherwise."""
        self._ensure_loaded()
        if name in self._entries or name in self._aliases:
            return self._resolve(name).obj
        known = sorted([*self._entries, *self._aliases])
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown {self.kind} {name!r}.{hint} Registered: {', '.join(known)}")

    def names(self, pattern: str = "*") -> list[str]:
        """Registered canonical names matching an fnmatch ``pattern``, sorted."""
        self._ensure_loaded()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def entry(self, name: str) -> Entry[T]:
        self.get(name)
        return self._resolve(name)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries or name in self._aliases

    def _resolve(self, name: str) -> Entry[T]:
        return self._entries[self._aliases.get(name, name)]

    # -- discovery --------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        self._import_builtins()
        self._import_entry_points()

    def _import_builtins(self) -> None:
        package = importlib.import_module(self.home_package)
        if self.home_package.partition(".")[0] in OWN_PACKAGES:
            check_own_package(package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.home_package}.{info.name}")

    def _import_entry_points(self) -> None:
        for ep in metadata.entry_points(group=self.group):
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            if ep.name in self._entries or ep.name in self._aliases:
                if self._resolve(ep.name).origin == BUILTIN:
                    self.load_errors[ep.name] = (
                        f"plugin {ep.value!r} from {dist} ignored: {ep.name!r} is a built-in"
                    )
                continue
            self._loading_origin = dist
            try:
                obj = ep.load()
                if isinstance(obj, type) and ep.name not in self._entries:
                    self._add(ep.name, (), obj)
            except Exception as exc:  # a broken plugin must not take the harness down
                self.load_errors[ep.name] = (
                    f"plugin {ep.value!r} from {dist} failed to load: "
                    f"{type(exc).__name__}: {exc}"
                )
            finally:
                self._loading_origin = BUILTIN


#: scramblebench's top-level packages, side by side in one folder (a checkout or site-packages)
OWN_PACKAGES = ("harness", "ciphers", "attacks", "reports")
OWN_ROOT = Path(__file__).resolve().parents[1]


def check_own_package(package: ModuleType) -> None:
    """Fail loudly when a home package is someone else's (e.g. a user project's own ``attacks/``
    folder shadowing ours on ``sys.path``): its built-ins would silently be missing."""
    locations = [Path(p).resolve() for p in getattr(package, "__path__", [])]
    if OWN_ROOT.joinpath(*package.__name__.split(".")) not in locations:
        found = ", ".join(map(str, locations)) or "a namespace package"
        raise ImportError(
            f"'{package.__name__}' resolves to {found}, not scramblebench's own package in {OWN_ROOT}: a folder "
            f"named '{package.__name__}' earlier on sys.path (often the current directory) shadows it; rename that "
            "folder or run from another directory"
        )


ciphers: Registry = Registry("cipher", "ciphers", "scramblebench.ciphers")
attacks: Registry = Registry("attack", "attacks", "scramblebench.attacks")
classifiers: Registry = Registry("classifier", "harness.classifiers", "scramblebench.classifiers")


def create_cipher(name: str, image_size: tuple[int, int], block_size: int | None = None, seed: int = 0, **options: object):
    """The registered cipher ``name`` with a key drawn from ``seed`` for images of ``image_size``.

    ``None`` options are dropped so a caller's unset flags never override a cipher's default.  A
    ``transport`` option (:mod:`harness.transport`) puts the cipher behind that channel.
    """
    from harness.transport import received

    kept = {k: v for k, v in options.items() if v is not None}
    transport = kept.pop("transport", None)
    return received(ciphers.get(name).from_seed(seed, image_size=image_size, block_size=block_size, **kept), transport)


def name_of(component: object) -> str:
    """The registry name of a component instance (its class name for unregistered ones)."""
    return getattr(component, "registry_name", type(component).__name__)

