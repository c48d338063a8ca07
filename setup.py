"""Build hook: the shipped models become package data.

``models/`` stays where models are built (``atomclass train ... -o models/NAME.onnx``) and
documented (``models/NAME.md``); every ``models/*.onnx`` and ``*.md`` found there is copied
into the wheel as ``ovito_atomclass/models/``, where ``ovito_atomclass.model.models_dir``
reads them with ``importlib.resources``.  Everything else is declared in setup.cfg.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS = Path(__file__).resolve().parent / "models"


class BuildWithModels(build_py):
    """``build_py`` that also copies the shipped models into the built package (not for
    editable installs: they read ``models/`` of the checkout)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        models = sorted(MODELS.glob("*.onnx"))
        if not models:
            raise SystemExit(f"no model files in {MODELS}: the package would ship without its default model")
        target = Path(self.build_lib) / "ovito_atomclass" / "models"
        target.mkdir(parents=True, exist_ok=True)
        for source in models + sorted(MODELS.glob("*.md")):
            shutil.copyfile(source, target / source.name)


setup(cmdclass={"build_py": BuildWithModels})
