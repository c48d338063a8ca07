"""Installing as a new user does: the sdist and the wheel built from it, the lean run-time
dependencies, the shipped models found after ``pip install --target`` from another folder,
and the declared Python version enforced by pip."""

import email
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import ovito_atomclass

ROOT = Path(__file__).resolve().parent.parent
RUN_TIME = {"ovito", "numpy", "numba", "onnxruntime", "tqdm", "traits"}
# what the sdist must carry for its tests, the training configurations and the documentation
SDIST_FOLDERS = ("tests", "configs", "models", "docs", "examples", "benchmarks")


def pip(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300,
                          **kwargs)


def source_files(folder: str) -> set[str]:
    """Files under ``folder`` of the source tree that belong in a distribution."""
    return {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and "_build" not in p.parts
            and p.suffix not in (".pyc", ".nbi", ".nbc")}


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The sdist, and the wheel built from it, as ``python -m build`` makes them."""
    out = tmp_path_factory.mktemp("dist")
    egg_info = ROOT / "ovito_atomclass.egg-info"  # what building the sdist leaves in the source tree
    leave_egg_info = egg_info.exists()
    run = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], capture_output=True,
                         text=True, timeout=600)
    if not leave_egg_info:
        shutil.rmtree(egg_info, ignore_errors=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {"sdist": next(out.glob("*.tar.gz")), "wheel": next(out.glob("*.whl"))}


def test_wheel_ships_every_model_as_package_data_and_needs_only_the_run_time(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        meta = email.message_from_string(wheel.read(next(n for n in names if n.endswith("/METADATA"))).decode())
    shipped = {p.name for p in (ROOT / "models").iterdir() if p.suffix in (".onnx", ".md")}
    assert {"default.onnx", "seed.onnx"} <= shipped
    assert {f"ovito_atomclass/models/{name}" for name in shipped} <= names
    assert not any(n.startswith(("tests/", "models/")) for n in names)  # nothing outside the package
    assert any(n.endswith("/licenses/LICENSE") for n in names)
    required = {r.split(";")[0].split(">")[0].split("=")[0].strip() for r in meta.get_all("Requires-Dist")
                if "extra ==" not in r}
    assert required == RUN_TIME
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Version"] == ovito_atomclass.__version__  # one home: setup.cfg reads it from the package


def test_sdist_carries_tests_configs_model_cards_and_docs(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for folder in SDIST_FOLDERS:
        missing = source_files(folder) - names
        assert not missing, f"the sdist lacks {sorted(missing)}"
    assert {"tests/conftest.py", "configs/general.toml", "models/default.md", "docs/conf.py"} <= names
    assert {"LICENSE", "CITATION.cff", "CHANGELOG.md", "README.md", "Makefile", "setup.py"} <= names


def test_pip_install_target_finds_the_shipped_models_from_another_folder(dists, tmp_path):
    target = tmp_path / "target"
    run = pip("install", "--no-deps", "--no-index", "--target", str(target), str(dists["wheel"]))
    assert run.returncode == 0, run.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import ovito_atomclass, sys; from ovito_atomclass.model import default_model_path, load_model; "
            "path = default_model_path(); model = load_model(path); "
            "print(ovito_atomclass.__file__, path, len(model.classes), sep='\\n')")
    env = {**os.environ, "PYTHONPATH": str(target)}
    shown = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    package, model, classes = shown.stdout.split()
    assert package.startswith(str(target)) and model == str(target / "ovito_atomclass" / "models" / "default.onnx")
    assert int(classes) > 1
    version = subprocess.run([sys.executable, "-m", "ovito_atomclass", "--version"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"atomclass {ovito_atomclass.__version__}"


@pytest.mark.parametrize(("python", "accepted"), [("3.10", False), ("3.11", True)])
def test_pip_refuses_python_older_than_3_11(dists, tmp_path, python, accepted):
    run = pip("install", "--dry-run", "--no-deps", "--no-index", "--ignore-installed", "--target", str(tmp_path),
              "--python-version", python, "--only-binary=:all:", str(dists["wheel"]))
    assert (run.returncode == 0) == accepted, run.stderr
    if not accepted:
        assert f"requires a different Python: {python}.0 not in '>=3.11'" in run.stderr
