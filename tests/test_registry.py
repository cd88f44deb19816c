"""The plugin registry: decorator, build from config, clear errors, third-party entry points."""

import sys

import pytest

from ocrforge import registry
from ocrforge.registry import Registry


def test_register_and_build_from_config():
    things = Registry("thing")

    @things.register()
    class Box:
        def __init__(self, width, height=1):
            self.area = width * height

    assert things.build({"name": "Box", "width": 3}, height=2).area == 6
    assert things.build(None) is None
    assert things.names() == ["Box"]


def test_unknown_name_lists_known_ones():
    things = Registry("thing")
    things.register("A")(object)
    with pytest.raises(KeyError, match=r"unknown thing 'B'. Known things: A"):
        things.get("B")


def test_duplicate_name_is_refused():
    things = Registry("thing")
    things.register("A")(int)
    with pytest.raises(KeyError, match="already registered"):
        things.register("A")(float)


def test_bad_kwargs_name_the_component():
    things = Registry("thing")
    things.register("A")(lambda width: width)
    with pytest.raises(TypeError, match=r"building thing 'A' with \['depth'\]"):
        things.build({"name": "A", "depth": 2})


def test_third_party_plugin_through_entry_points(install_plugin, monkeypatch):
    """A package declaring an ``ocrforge.plugins`` entry point adds a backbone without editing ocrforge."""
    install_plugin("acme_ocr_plugin", """
        from ocrforge.registry import LOSSES

        @LOSSES.register("AcmeLoss")
        class AcmeLoss:
            def __init__(self, weight=1.0):
                self.weight = weight
    """)
    losses = Registry("loss")
    monkeypatch.setattr(registry, "LOSSES", losses)
    assert losses.build({"name": "AcmeLoss", "weight": 2.0}).weight == 2.0
    assert "acme_ocr_plugin" in sys.modules


def test_broken_plugin_is_named(install_plugin):
    install_plugin("broken_plugin", "raise RuntimeError('boom')\n", entry_name="broken")
    with pytest.raises(ImportError, match=r"ocrforge plugin 'broken' \(broken_plugin\) failed to import: boom"):
        Registry("thing").get("Nothing")
