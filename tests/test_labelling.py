"""``atomclass label``: known labels, identical outputs for any number of workers or a Dask
cluster, resume, corrupt and truncated frames, refusals."""

import csv
import filecmp
import shutil

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from ovito_atomclass.cli import main
from ovito_atomclass.crystals import l12_ni3al

N_FRAMES = 4


def label(*argv: str) -> int:
    return main(["label", *map(str, argv)])


def read_counts(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def frames_in(folder) -> list[str]:
    return sorted(p.name for p in folder.glob("frame_*"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """``mixed.xyz``: fcc Ni then L1_2 Ni3Al (108 atoms each, extxyz); ``traj.dump``: a
    LAMMPS dump of N_FRAMES rattled L1_2 frames at timesteps 0, 100, ...; ``bad.xyz``: three
    frames, the middle one corrupt; ``truncated.dump``: ``traj.dump`` cut inside its last frame."""
    from ovito.io import export_file, import_file

    folder = tmp_path_factory.mktemp("inputs")
    ase.io.write(folder / "mixed.xyz", [bulk("Ni", "fcc", a=3.52, cubic=True) * (3, 3, 3), l12_ni3al(repeat=3)],
                 format="extxyz")
    frames = []
    for k in range(N_FRAMES):
        atoms = l12_ni3al(repeat=3)
        atoms.rattle(0.03, seed=k)
        frames.append(atoms)
    ase.io.write(folder / "rattled.xyz", frames, format="extxyz")
    pipeline = import_file(str(folder / "rattled.xyz"))
    pipeline.modifiers.append(lambda frame, data: data.attributes.__setitem__("Timestep", 100 * frame))
    export_file(pipeline, str(folder / "traj.dump"), "lammps/dump", multiple_frames=True,
                columns=["Particle Type", "Position.X", "Position.Y", "Position.Z"])
    lines = (folder / "rattled.xyz").read_text().splitlines(keepends=True)
    per_frame = len(lines) // N_FRAMES
    lines[per_frame + 5] = "Ni 0.0 zero 0.0\n"
    (folder / "bad.xyz").write_text("".join(lines[: 3 * per_frame]))
    dump = (folder / "traj.dump").read_text().splitlines(keepends=True)
    (folder / "truncated.dump").write_text("".join(dump[:-20]))
    return folder


def test_known_structures_get_their_class_and_extxyz_keeps_the_names(inputs, tiny_model, tmp_path):
    out = tmp_path / "out"
    assert label(inputs / "mixed.xyz", "-o", out, "-m", tiny_model, "-j", 1, "-q") == 0
    assert frames_in(out) == ["frame_000000.xyz", "frame_000001.xyz"]
    fcc, l12 = (ase.io.read(out / f"frame_00000{i}.xyz", format="extxyz") for i in (0, 1))
    assert set(fcc.arrays["structure_type"]) == {"fccNi"} and len(fcc) == 108
    assert set(l12.arrays["structure_type"]) == {"gamma_prime"} and len(l12) == 108
    np.testing.assert_allclose(l12.positions, l12_ni3al(repeat=3).positions, atol=1e-6)
    rows = read_counts(out / "counts.csv")
    assert [(r["frame"], r["count_fccNi"], r["count_gamma_prime"], r["fraction_gamma_prime"]) for r in rows] == \
        [("0", "108", "0", "0.000000"), ("1", "0", "108", "1.000000")]
    assert (out / "counts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_and_two_workers_write_identical_files(inputs, tiny_model, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert label(inputs / "traj.dump", "-o", one, "-m", tiny_model, "-j", 1, "-q", "--probabilities") == 0
    assert label(inputs / "traj.dump", "-o", two, "-m", tiny_model, "-j", 2, "-q", "--probabilities") == 0
    names = frames_in(one)
    assert names == [f"frame_{i:06d}.dump" for i in range(N_FRAMES)] == frames_in(two)
    assert filecmp.cmpfiles(one, two, names + ["counts.csv"], shallow=False)[0] == names + ["counts.csv"]
    rows = read_counts(one / "counts.csv")
    assert [r["timestep"] for r in rows] == ["0", "100", "200", "300"]
    assert all(r["count_gamma_prime"] == "108" for r in rows)
    header = (one / "frame_000002.dump").read_text().splitlines()[8]
    assert header.split()[-6:] == ["StructureType", "StructureProbabilityfccNi", "StructureProbabilitygamma",
                                   "StructureProbabilitygamma_prime", "StructureProbabilitybccFe", "Confidence"]


def test_frame_selection(inputs, tiny_model, tmp_path):
    assert label(inputs / "traj.dump", "-o", tmp_path / "a", "-m", tiny_model, "-j", 1, "-q", "--frames", "1::2") == 0
    assert label(inputs / "traj.dump", "-o", tmp_path / "b", "-m", tiny_model, "-j", 1, "-q",
                 "--start", 1, "--every", 2) == 0
    assert frames_in(tmp_path / "a") == frames_in(tmp_path / "b") == ["frame_000001.dump", "frame_000003.dump"]
    assert [r["frame"] for r in read_counts(tmp_path / "a" / "counts.csv")] == ["1", "3"]


def test_resume_relabels_only_what_is_missing(inputs, tiny_model, tmp_path, capsys):
    out, reference = tmp_path / "out", tmp_path / "reference"
    assert label(inputs / "traj.dump", "-o", reference, "-m", tiny_model, "-j", 1, "-q") == 0
    shutil.copytree(reference, out)
    # interrupted: two frames never written, and a frame written after the last CSV update
    (out / "frame_000001.dump").unlink()
    (out / "frame_000003.dump").unlink()
    lines = (out / "counts.csv").read_text().splitlines(keepends=True)
    (out / "counts.csv").write_text("".join(lines[:3] + lines[4:]))  # drop frame 2's row
    assert label(inputs / "traj.dump", "-o", out, "-m", tiny_model, "-j", 1, "-q") == 2  # refuses to overwrite
    assert "--resume" in capsys.readouterr().err
    assert label(inputs / "traj.dump", "-o", out, "-m", tiny_model, "-j", 1, "--resume") == 0
    summary = capsys.readouterr().out
    assert "labelled 3 frames" in summary and "1 already done" in summary
    assert (out / "counts.csv").read_text() == (reference / "counts.csv").read_text()
    assert frames_in(out) == frames_in(reference)
    assert all(filecmp.cmp(out / n, reference / n, shallow=False) for n in frames_in(out))


def test_corrupt_frame_stops_the_run_unless_keep_going(inputs, tiny_model, tmp_path, capsys):
    stop, going = tmp_path / "stop", tmp_path / "going"
    assert label(inputs / "bad.xyz", "-o", stop, "-m", tiny_model, "-j", 1, "-q") == 1
    err = capsys.readouterr().err
    assert f"{inputs / 'bad.xyz'}, frame 1:" in err and len(err.strip().splitlines()) == 1
    assert frames_in(stop) == ["frame_000000.xyz"]
    assert [r["frame"] for r in read_counts(stop / "counts.csv")] == ["0"]

    assert label(inputs / "bad.xyz", "-o", going, "-m", tiny_model, "-j", 1, "-q", "--keep-going") == 0
    assert frames_in(going) == ["frame_000000.xyz", "frame_000002.xyz"]
    errors = read_counts(going / "counts.errors.csv")
    assert [(e["frame"], e["frame_in_file"]) for e in errors] == [("1", "1")]
    assert "bad.xyz, frame 1:" in errors[0]["error"]


def test_truncated_last_frame_is_reported(inputs, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert label(inputs / "truncated.dump", "-o", out, "-m", tiny_model, "-j", 1, "-q") == 1
    err = capsys.readouterr().err
    assert f"truncated.dump, frame {N_FRAMES - 1}: truncated" in err
    assert frames_in(out) == [f"frame_{i:06d}.dump" for i in range(N_FRAMES - 1)]


@pytest.mark.parametrize("extra, message", [
    (["-o", "{input}"], "is a file"),
    (["-o", "{folder}/traj.*"], "refusing to overwrite the input"),
    (["-o", "{tmp}/x", "--frames", "1:x"], "--frames"),
    (["-o", "{tmp}/x", "--frames", "::2", "--every", "2"], "either --frames"),
    (["-o", "{tmp}/x", "-j", "0"], "--workers"),
    (["-o", "{tmp}/x", "-m", "{tmp}/missing.onnx"], "model file not found"),
])
def test_usage_errors_exit_2_with_one_line(inputs, tiny_model, tmp_path, capsys, extra, message):
    copy = tmp_path / "traj.000000"
    shutil.copy(inputs / "traj.dump", copy)
    argv = [a.format(input=copy, folder=tmp_path, tmp=tmp_path) for a in extra]
    assert label(copy, "-m", tiny_model, "-q", *argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert (tmp_path / "traj.000000").read_bytes() == (inputs / "traj.dump").read_bytes()


def test_dask_cluster_run_equals_the_local_run(inputs, tiny_model, tmp_path):
    import distributed

    local, remote = tmp_path / "local", tmp_path / "dask"
    assert label(inputs / "traj.dump", "-o", local, "-m", tiny_model, "-j", 1, "-q") == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert label(inputs / "traj.dump", "-o", remote, "-m", tiny_model, "-q",
                     "--scheduler", cluster.scheduler_address) == 0
    names = frames_in(local) + ["counts.csv"]
    assert filecmp.cmpfiles(local, remote, names, shallow=False)[0] == names
