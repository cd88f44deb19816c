"""Components registered by name, so that YAML configs can build them and other packages can add their own.

A component registers with a decorator::

    from ocrforge.registry import BACKBONES

    @BACKBONES.register()
    class MyNet(paddle.nn.Layer): ...

and a config builds it with ``{"name": "MyNet", **kwargs}``. A third-party package makes its components
known by declaring a module under the ``ocrforge.plugins`` entry-point group; the module is imported (and
so registers what it defines) the first time a name is looked up.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Callable

ENTRY_POINT_GROUP = "ocrforge.plugins"

_plugins_loaded = False


def load_plugins() -> list[str]:
    """Import every module declared under the ``ocrforge.plugins`` entry-point group, once.

    Returns the names of the entry points loaded. A plugin that fails to import is reported with its
    name, so a broken third-party package does not look like a missing component.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True
    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - re-raised with the plugin's name
            raise ImportError(
                f"ocrforge plugin {ep.name!r} ({ep.value}) failed to import: {exc}. "
                f"Fix or uninstall the package that declares it."
            ) from exc
        loaded.append(ep.name)
    return loaded


class Registry:
    """A table of named components of one kind (backbones, losses, stages, ...).

    ``home_modules`` are ocrforge's own modules that define components of this kind; they are imported
    lazily on first lookup, so importing the registry does not import paddle.
    """

    def __init__(self, kind: str, home_modules: tuple[str, ...] = ()):
        self.kind = kind
        self.home_modules = home_modules
        self._items: dict[str, Any] = {}
        self._homes_loaded = False

    def register(self, name: str | None = None, *, force: bool = False) -> Callable[[Any], Any]:
        """Decorator that registers a class or function under ``name`` (default: its ``__name__``)."""

        def deco(obj: Any) -> Any:
            key = name or obj.__name__
            if key in self._items and self._items[key] is not obj and not force:
                raise KeyError(
                    f"{self.kind} {key!r} is already registered by {self._items[key].__module__}; "
                    f"pick another name or pass force=True to replace it."
                )
            self._items[key] = obj
            return obj

        return deco

    def _load_homes(self) -> None:
        if not self._homes_loaded:
            self._homes_loaded = True
            for mod in self.home_modules:
                importlib.import_module(mod)

    def get(self, name: str) -> Any:
        """Return the component registered as ``name``, importing built-ins and plugins as needed."""
        if name not in self._items:
            self._load_homes()
        if name not in self._items:
            load_plugins()
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(
                f"unknown {self.kind} {name!r}. Known {self.kind}s: {known}. "
                f"A plugin package can add one through the {ENTRY_POINT_GROUP!r} entry-point group."
            )
        return self._items[name]

    def names(self) -> list[str]:
        self._load_homes()
        load_plugins()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except KeyError:
            return False
        return True

    def build(self, cfg: dict | None, **extra: Any) -> Any:
        """Build a component from a config mapping ``{"name": ..., **kwargs}``; ``extra`` adds kwargs.

        Returns None for a None config, so optional sections (a missing ``Neck``) stay optional.
        """
        if cfg is None:
            return None
        if "name" not in cfg:
            raise KeyError(f"a {self.kind} config needs a 'name' key; got keys {sorted(cfg)}")
        kwargs = {k: v for k, v in cfg.items() if k != "name"}
        kwargs.update(extra)
        factory = self.get(cfg["name"])
        try:
            return factory(**kwargs)
        except TypeError as exc:
            raise TypeError(f"building {self.kind} {cfg['name']!r} with {sorted(kwargs)}: {exc}") from exc


BACKBONES = Registry("backbone", ("ocrforge.models.backbones",))
NECKS = Registry("neck", ("ocrforge.models.necks",))
HEADS = Registry("head", ("ocrforge.models.heads",))
MODELS = Registry("model", ("ocrforge.models.architectures",))
LOSSES = Registry("loss", ("ocrforge.losses",))
METRICS = Registry("metric", ("ocrforge.metrics",))
POSTPROCESS = Registry("postprocess", ("ocrforge.postprocess",))
OPTIMIZERS = Registry("optimizer", ("ocrforge.engine.optim",))
SCHEDULERS = Registry("scheduler", ("ocrforge.engine.optim",))
DATASETS = Registry("data source", ("ocrforge.data.sources",))
TRANSFORMS = Registry("transform", ("ocrforge.data.transforms",))
STAGES = Registry("stage", ("ocrforge.stages_registry",))
