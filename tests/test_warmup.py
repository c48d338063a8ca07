"""The first run after installing: the kernels a spec needs are compiled or loaded up front,
on a tiny frame, while the modifier says so and the command line prints one line."""

import os
import subprocess
import sys
import textwrap
import time

import numba
import numpy as np
import pytest

import ovito_atomclass.labelling as labelling
import ovito_atomclass.warmup as warmup
from ovito_atomclass import AtomClassifierModifier, FeatureSpec
from ovito_atomclass.cli import main
from ovito_atomclass.model import models_dir


def fresh_kernel():
    """A numba function never compiled before (no cache): its first call compiles."""
    @numba.njit
    def twice(x):
        return 2 * x

    return twice


def compiling_prepare(spec):
    """Stands in for :func:`warmup.prepare` on a cold cache: numba compiles, which takes a while."""
    fresh_kernel()(1)
    time.sleep(0.3)


def test_on_compile_reports_a_compilation_once_and_not_a_compiled_call():
    calls = []
    kernel = fresh_kernel()
    with warmup.on_compile(lambda: calls.append(1)):
        assert kernel(3) == 6 and calls == [1]
        kernel(4), fresh_kernel()(5)
        assert calls == [1]
    fresh_kernel()(6)
    assert calls == [1]


def test_modifier_says_when_it_compiles_the_kernels_and_then_labels(tiny_model, monkeypatch):
    from ovito.io.ase import ase_to_ovito

    from ovito_atomclass.crystals import l12_ni3al

    monkeypatch.setattr(warmup, "_READY", set())
    monkeypatch.setattr(warmup, "prepare", compiling_prepare)
    data = ase_to_ovito(l12_ni3al(repeat=3))
    reports = list(AtomClassifierModifier(model_file=str(tiny_model)).modify(data, frame=0))
    assert f"Atom classifier: {warmup.COMPILING}" in reports
    assert reports[-1] == 1.0 and (np.asarray(data.particles["Structure Type"]) == 3).all()  # gamma_prime
    # kernels that are ready: no message about them at all
    monkeypatch.setattr(warmup, "_READY", {FeatureSpec().to_json()})
    reports = list(AtomClassifierModifier(model_file=str(tiny_model)).modify(data, frame=0))
    assert not any("kernels" in r for r in reports if isinstance(r, str))


def test_an_error_while_preparing_reaches_the_caller(monkeypatch):
    def broken(spec):
        raise ValueError("no kernel today")

    monkeypatch.setattr(warmup, "_READY", set())
    monkeypatch.setattr(warmup, "prepare", broken)
    with pytest.raises(ValueError, match="no kernel today"):
        list(warmup.preparing(FeatureSpec(), poll=0.01))


def test_label_prints_one_line_while_compiling_unless_quiet(tiny_model, tmp_path, monkeypatch, capfd):
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "ni.xyz", bulk("Ni", "fcc", a=3.52, cubic=True) * (3, 3, 3), format="extxyz")
    monkeypatch.setattr(labelling, "prepare", compiling_prepare)
    args = ["label", str(tmp_path / "ni.xyz"), "-m", str(tiny_model), "-j", "1"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert capfd.readouterr().err.count(warmup.COMPILING) == 1
    assert main([*args, "-o", str(tmp_path / "b"), "-q"]) == 0
    assert warmup.COMPILING not in capfd.readouterr().err


def test_prepare_leaves_nothing_to_compile_for_real_frames(tmp_path):
    # in a fresh process: prepare the specs of the shipped model and of the default spec, then
    # compute features of real frames; no numba function may gain a signature (compiled or loaded)
    code = f"""
        import sys
        import numba
        from ase.build import bulk
        from ovito_atomclass import FeatureSpec, compute_features, load_model
        from ovito_atomclass.warmup import prepare

        def signatures():
            return {{f"{{value.py_func.__module__}}.{{value.__name__}}": tuple(value.signatures)
                    for name, module in list(sys.modules.items()) if name.startswith("ovito_atomclass")
                    for value in vars(module).values() if isinstance(value, numba.core.registry.CPUDispatcher)}}

        specs = [load_model(r"{models_dir() / 'default.onnx'}").spec, FeatureSpec()]
        for spec in specs:
            prepare(spec)
        prepared = signatures()
        crystal = bulk("Ni", "fcc", a=3.52, cubic=True) * (8, 8, 8)
        crystal.rattle(0.1, seed=0)
        crystal.symbols[::5] = "Al"
        cluster = crystal.copy()
        cluster.pbc = False
        for spec in specs:
            for atoms in (crystal, cluster):
                assert compute_features(atoms, spec).shape == (2048, len(spec.feature_names))
        assert len([kernel for kernel, compiled in prepared.items() if compiled]) >= 4
        print({{k: v for k, v in signatures().items() if v != prepared.get(k)}})
        """
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    assert run.stdout.strip() == "{}", run.stdout + run.stderr[-3000:]
