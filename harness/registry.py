"""Plugin registries: one catalogue per kind (ciphers, attacks, classifiers).

A plugin is a class decorated with ``@<registry>.register("name", *aliases)``.  Built-in
plugins are the decorated top-level classes of the modules of the registry's home package, so
adding a plugin never means editing a list.  On first use the registry *reads* those modules'
source (no import: listing plugins must not pay for torch and timm); a module is imported when
one of its plugins is asked for, and its decorator must then register what its source declared.
Installed third-party packages add plugins through the entry-point groups
``scramblebench.ciphers`` / ``.attacks`` / ``.classifiers`` (loaded on first use, so a broken one
is reported); built-ins win over a same-named plugin, and a plugin that fails to import is
recorded, not fatal.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import importlib
import importlib.util
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

    @property
    def target(self) -> str:
        """Where the class lives, ``module.QualName``."""
        return f"{self.module}.{self.obj.__qualname__}"


@dataclass(frozen=True)
class Declaration:
    """A built-in plugin as its module's source declares it, known without importing the module."""

    name: str
    aliases: tuple[str, ...]
    module: str
    qualname: str
    origin: str = BUILTIN

    @property
    def target(self) -> str:
        return f"{self.module}.{self.qualname}"


class Registry(Generic[T]):
    """Name -> class catalogue with aliases, fnmatch listing and entry-point discovery."""

    def __init__(self, kind: str, home_package: str, group: str) -> None:
        self.kind = kind
        self.home_package = home_package
        self.group = group
        self._entries: dict[str, Entry[T]] = {}
        self._declared: dict[str, Declaration] = {}  # built-ins read from source, not imported yet
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
        declared = self._declared.get(name)
        fulfils = declared == Declaration(name, tuple(aliases), cls.__module__, cls.__qualname__)
        for key in (name, *aliases):
            self._check_free(key, allow_declared=fulfils)
        origin = BUILTIN if fulfils else self._loading_origin  # a built-in imported while a plugin loads stays built-in
        self._entries[name] = Entry(name, cls, origin, cls.__module__)
        self._declared.pop(name, None)
        for alias in aliases:
            self._aliases[alias] = name
        cls.registry_name = name  # type: ignore[attr-defined]

    def _declare(self, declaration: Declaration) -> None:
        if declaration.name in self._entries:  # its module was imported before the registry was first used
            return
        for key in (declaration.name, *declaration.aliases):
            self._check_free(key, allow_declared=False)
        self._declared[declaration.name] = declaration
        for alias in declaration.aliases:
            self._aliases[alias] = declaration.name

    def _check_free(self, key: str, *, allow_declared: bool) -> None:
        if not key or key != key.lower() or any(ch in key for ch in ",*?[] "):
            raise ValueError(
                f"{self.kind} name {key!r} must be a non-empty lowercase word "
                "without commas, spaces or wildcard characters"
            )
        taken = key in self._entries or key in self._aliases or key in self._declared
        if taken and not (allow_declared and self._aliases.get(key, key) in self._declared):
            raise ValueError(f"{self.kind} name {key!r} is already registered by {self.describe(key).target}")

    # -- lookup -----------------------------------------------------------------------
    def get(self, name: str) -> type[T]:
        """The class registered under ``name`` or an alias (its module imported now if it was
        only declared); did-you-mean error otherwise."""
        self._ensure_loaded()
        if name not in self:
            known = sorted([*self._entries, *self._declared, *self._aliases])
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(f"unknown {self.kind} {name!r}.{hint} Registered: {', '.join(known)}")
        key = self._aliases.get(name, name)
        if key in self._declared:
            self._import_declared(self._declared[key])
        return self._entries[key].obj

    def names(self, pattern: str = "*") -> list[str]:
        """Registered canonical names matching an fnmatch ``pattern``, sorted (nothing imported)."""
        self._ensure_loaded()
        return sorted(n for n in [*self._entries, *self._declared] if fnmatch.fnmatchcase(n, pattern))

    def entry(self, name: str) -> Entry[T]:
        self.get(name)
        return self._entries[self._aliases.get(name, name)]

    def describe(self, name: str) -> Entry[T] | Declaration:
        """What is known of ``name`` without importing it: its entry, or its built-in declaration."""
        self._ensure_loaded()
        key = self._aliases.get(name, name)
        if key in self._entries:
            return self._entries[key]
        if key in self._declared:
            return self._declared[key]
        raise KeyError(f"unknown {self.kind} {name!r}")

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries or name in self._declared or name in self._aliases

    def _import_declared(self, declaration: Declaration) -> None:
        importlib.import_module(declaration.module)
        if declaration.name not in self._entries:
            raise ImportError(
                f"{declaration.module} declares {self.kind} {declaration.name!r} on class {declaration.qualname} "
                f"in its source, but importing it registered nothing under that name"
            )

    # -- discovery --------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        self._declare_builtins()
        self._import_entry_points()

    def _declare_builtins(self) -> None:
        package = importlib.import_module(self.home_package)
        if self.home_package.partition(".")[0] in OWN_PACKAGES:
            check_own_package(package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):
                continue
            module = f"{self.home_package}.{info.name}"
            source = _source(module) if not info.ispkg else None
            if source is None:  # a subpackage or a compiled module: only importing it tells
                importlib.import_module(module)
                continue
            for name, aliases, qualname in declared_plugins(source):
                self._declare(Declaration(name, aliases, module, qualname))

    def _import_entry_points(self) -> None:
        for ep in metadata.entry_points(group=self.group):
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            if ep.name in self._entries or ep.name in self._declared or ep.name in self._aliases:
                if self.describe(ep.name).origin == BUILTIN:
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


def _source(module: str) -> str | None:
    """A module's Python source, found without importing the module (None for compiled ones)."""
    spec = importlib.util.find_spec(module)
    loader = spec.loader if spec is not None else None
    get_source = getattr(loader, "get_source", None)
    return get_source(module) if get_source is not None else None


def declared_plugins(source: str) -> list[tuple[str, tuple[str, ...], str]]:
    """``(name, aliases, class name)`` of every top-level class of ``source`` decorated with
    ``@<registry>.register("name", *aliases)`` (string literals only, as the registry requires)."""
    found = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for decorator in node.decorator_list:
            if (
                isinstance(decorator, ast.Call)
                and isinstance(decorator.func, ast.Attribute)
                and decorator.func.attr == "register"
                and decorator.args
                and not decorator.keywords
                and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in decorator.args)
            ):
                name, *aliases = (a.value for a in decorator.args)
                found.append((name, tuple(aliases), node.name))
    return found


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

