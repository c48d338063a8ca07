"""The conventions of the command line: ``--version``, ``python -m``, ``-q``/``-v`` on every
subcommand, help text without reStructuredText markup, and ``atomclass label`` on the lean
install: it imports nothing of the training stack and works without it."""

import os
import subprocess
import sys
import textwrap

import ase.io
import pytest

import ovito_atomclass
from ovito_atomclass.cli import SUBCOMMANDS, main
from ovito_atomclass.crystals import l12_ni3al

# what the lean install lacks (numba imports scipy and yaml when they are there, the plot matplotlib)
TRAINING_STACK = ("ase", "sklearn", "scipy", "skl2onnx", "onnx", "matplotlib", "yaml")
TRAINING_MODULES = ("ase", "sklearn", "skl2onnx", "onnx", "ovito_atomclass.training", "ovito_atomclass.zoo",
                    "ovito_atomclass.report", "ovito_atomclass.crystals", "ovito_atomclass.dataset",
                    "ovito_atomclass.augment", "ovito_atomclass.samples", "ovito_atomclass.trajectory")


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Two extxyz frames of L1_2 Ni3Al (108 atoms each)."""
    path = tmp_path_factory.mktemp("frames") / "l12.xyz"
    ase.io.write(path, [l12_ni3al(repeat=3), l12_ni3al(repeat=3)], format="extxyz")
    return path


def python(code: str, cwd, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OVITO_THREAD_COUNT": "1"})


def test_version_and_python_m(capsys, tmp_path):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"atomclass {ovito_atomclass.__version__}\n"
    run = subprocess.run([sys.executable, "-m", "ovito_atomclass", "label", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("usage: atomclass label")


@pytest.mark.parametrize("argv", [[], *([name] for name in SUBCOMMANDS)])
def test_help_is_plain_text_and_every_subcommand_takes_q_and_v(argv, capsys):
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: atomclass") and "exit codes:" in text
    assert "``" not in text and ":func:" not in text and ":class:" not in text
    if argv:
        assert "-q, --quiet" in text and "-v, --verbose" in text
    else:
        assert "--version" in text and all(name in text for name in SUBCOMMANDS)


def test_quiet_and_verbose_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as usage:
        main(["label", "x.xyz", "-o", "out", "-q", "-v"])
    assert usage.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_verbose_says_what_it_uses_and_quiet_prints_nothing(frames, tiny_model, tmp_path, capfd):
    assert main(["label", str(frames), "-o", str(tmp_path / "v"), "-m", str(tiny_model), "-j", "1", "-v"]) == 0
    err = capfd.readouterr().err
    assert f"model {tiny_model}: classes fccNi, gamma, gamma_prime, bccFe" in err
    assert "2 frames selected in 1 files" in err
    assert f"frame 1 ({frames}, frame 1): gamma_prime 108" in err
    assert main(["label", str(frames), "-o", str(tmp_path / "q"), "-m", str(tiny_model), "-j", "1", "-q"]) == 0
    assert capfd.readouterr() == ("", "")
    # an error: one line, and with -v its traceback first
    assert main(["label", str(tmp_path / "none.xyz"), "-o", str(tmp_path / "e")]) == 2
    assert capfd.readouterr().err == f"atomclass label: error: input file not found: {tmp_path / 'none.xyz'}\n"
    assert main(["label", str(tmp_path / "none.xyz"), "-o", str(tmp_path / "e"), "-v"]) == 2
    err = capfd.readouterr().err
    assert err.startswith("Traceback") and err.endswith("atomclass label: error: input file not found: "
                                                        f"{tmp_path / 'none.xyz'}\n")


def test_label_imports_nothing_of_the_training_stack(frames, tiny_model, tmp_path):
    run = python(f"""
        import sys
        from ovito_atomclass.cli import main
        assert main(["label", r"{frames}", "-o", r"{tmp_path / 'out'}", "-m", r"{tiny_model}", "-j", "1", "-q"]) == 0
        training = {TRAINING_MODULES!r}
        inside = tuple(m + "." for m in training)
        print(" ".join(sorted(n for n in sys.modules if n in training or n.startswith(inside))))
        """, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [] and (tmp_path / "out" / "counts.png").exists()


def test_lean_install_labels_without_the_training_stack_and_train_names_the_extra(frames, tiny_model, tmp_path):
    run = python(f"""
        import importlib.abc, sys

        class Absent(importlib.abc.MetaPathFinder):  # what the lean install lacks
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {TRAINING_STACK!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, Absent())
        from ovito_atomclass.cli import main
        print(main(["label", r"{frames}", "-o", r"{tmp_path / 'out'}", "-m", r"{tiny_model}", "-j", "1"]))
        print(main(["train", "any.toml", "-o", "m.onnx"]))
        """, tmp_path)
    assert run.stdout.split()[-2:] == ["0", "1"], run.stderr
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"counts.csv", "frame_000000.xyz", "frame_000001.xyz"} <= written and "counts.png" not in written
    assert "no plot of the fractions: matplotlib is not installed" in run.stderr
    assert "atomclass train: needs ase, which the [train] extra installs" in run.stderr
    assert "pip install 'ovito-atomclass[train]'" in run.stderr
