"""Every public module, class, function and method of the package says what it does (the
API reference of the documentation site is generated from these docstrings)."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import ovito_atomclass


def public_objects():
    """(name, object) of every public module, and of the classes, functions and methods they define."""
    for info in pkgutil.iter_modules(ovito_atomclass.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"ovito_atomclass.{info.name}")
        yield module.__name__, module
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{module.__name__}.{name}", obj
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    if isinstance(value, (classmethod, staticmethod)):
                        value = value.__func__
                    elif isinstance(value, property):
                        value = value.fget
                    if not member.startswith("_") and inspect.isfunction(value):
                        yield f"{module.__name__}.{name}.{member}", value


def test_every_public_name_has_a_docstring():
    found = dict(public_objects())
    assert {"ovito_atomclass.modifier.AtomClassifierModifier.modify", "ovito_atomclass.cli.main",
            "ovito_atomclass.model.default_model_path", "ovito_atomclass.spec.FeatureSpec.from_json"} <= set(found)
    missing = sorted(name for name, obj in found.items() if not (obj.__doc__ or "").strip())
    assert not missing, f"no docstring: {missing}"


def test_the_api_reference_covers_every_public_module():
    api = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^\.\. automodule:: (\S+)$", api, flags=re.M))
    modules = {name for name, obj in public_objects() if inspect.ismodule(obj)}
    assert documented == modules
