"""``atomclass label``: known labels, identical outputs for any number of workers or a Dask
cluster, resume, corrupt and truncated frames, refusals; nothing lost or mixed up under damaged
frames and counts, changed inputs, models and options, and two runs into one folder."""

import argparse
import csv
import filecmp
import gzip
import os
import shutil
from pathlib import Path

import ase.io
import numpy as np
import onnx
import pytest
from ase.build import bulk

from ovito_atomclass import labelling
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
    frames, the middle one corrupt; ``truncated.dump``: ``traj.dump`` cut inside its last frame;
    ``count.dump`` and ``count.xyz``: ``traj.dump`` and ``rattled.xyz`` with a wrong atom count
    in frame 1, ``count0.dump`` in frame 0."""
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
    # frame 1 with a wrong atom count: OVITO's index of the file ends there
    per_dump_frame = len(dump) // N_FRAMES
    assert dump[per_dump_frame + 2] == "ITEM: NUMBER OF ATOMS\n"
    (folder / "count.dump").write_text("".join(dump[: per_dump_frame + 3] + ["200\n"] + dump[per_dump_frame + 4:]))
    (folder / "count0.dump").write_text("".join(dump[:3] + ["200\n"] + dump[4:]))  # OVITO cannot open it
    xyz = (folder / "rattled.xyz").read_text().splitlines(keepends=True)
    assert xyz[per_frame] == "108\n"
    (folder / "count.xyz").write_text("".join(xyz[:per_frame] + ["110\n"] + xyz[per_frame + 1:]))
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
    (["-o", "{tmp}/x", "--frames="], "--frames must be START:STOP:STEP with integers, got ''"),
    (["-o", "{tmp}/x", "--frames", "10"], "--frames 10 selects none of the 4 frames (0 to 3)"),
    (["-o", "{tmp}/x", "--start", "7", "--every", "2"], "--start 7 --every 2 selects none of the 4 frames"),
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


# --- nothing lost, nothing mixed up ---------------------------------------------------


def rows_by_frame(path) -> list[tuple]:
    return [(r["frame"], Path(r["file"]).name, r["frame_in_file"], r["count_gamma_prime"]) for r in read_counts(path)]


@pytest.mark.parametrize("name, damaged", [("count.dump", 1), ("count0.dump", 0), ("count.xyz", 1)])
def test_a_frame_with_a_wrong_atom_count_costs_that_frame_only(inputs, tiny_model, tmp_path, name, damaged):
    intact = {".dump": "traj.dump", ".xyz": "rattled.xyz"}[Path(name).suffix]
    out, reference = tmp_path / "out", tmp_path / "reference"
    assert label(inputs / intact, "-o", reference, "-m", tiny_model, "-j", 1, "-q") == 0
    assert label(inputs / name, "-o", out, "-m", tiny_model, "-j", 1, "-q", "--keep-going") == 0
    errors = read_counts(out / "counts.errors.csv")
    assert [(e["frame"], e["frame_in_file"]) for e in errors] == [(str(damaged), str(damaged))]
    assert f"frame {damaged}: truncated or corrupt" in errors[0]["error"]
    kept = [n for n in frames_in(reference) if f"00000{damaged}" not in n]
    assert frames_in(out) == kept and all(filecmp.cmp(out / n, reference / n, shallow=False) for n in kept)
    assert [r[2:] for r in rows_by_frame(out / "counts.csv")] == \
        [(str(k), "108") for k in range(N_FRAMES) if k != damaged]


def test_frames_after_a_damaged_one_in_a_gzipped_file_are_read(inputs, tiny_model, tmp_path):
    packed = tmp_path / "count.dump.gz"
    packed.write_bytes(gzip.compress((inputs / "count.dump").read_bytes()))
    assert label(packed, "-o", tmp_path / "out", "-m", tiny_model, "-j", 1, "-q", "--keep-going") == 0
    assert frames_in(tmp_path / "out") == ["frame_000000.dump", "frame_000002.dump", "frame_000003.dump"]


def test_frames_that_cannot_be_reached_are_listed_and_fail_the_run(inputs, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(labelling, "frame_starts", lambda path, reader: None)  # a format without frame markers
    out = tmp_path / "out"
    assert label(inputs / "count.dump", inputs / "traj.dump", "-o", out, "-m", tiny_model, "-j", 1, "-q",
                 "--keep-going") == 1
    errors = read_counts(out / "counts.errors.csv")
    assert [(e["frame"], e["frame_in_file"]) for e in errors] == [("1", "1")]
    assert "the frames after it, if any, cannot be found" in errors[0]["error"]
    assert [r[:3] for r in rows_by_frame(out / "counts.csv")] == \
        [("0", "count.dump", "0")] + [(str(i + 2), "traj.dump", str(i)) for i in range(N_FRAMES)]


def test_resume_after_fixing_a_file_labels_each_frame_once(inputs, tiny_model, tmp_path):
    # a.dump: frame 1 damaged, then fixed; b.dump after it
    a, b = tmp_path / "a.dump", tmp_path / "b.dump"
    shutil.copy(inputs / "count.dump", a)
    shutil.copy(inputs / "traj.dump", b)
    out, reference = tmp_path / "out", tmp_path / "reference"
    assert label(a, b, "-o", out, "-m", tiny_model, "-j", 1, "-q", "--keep-going") == 0
    shutil.copy(inputs / "traj.dump", a)
    assert label(a, b, "-o", reference, "-m", tiny_model, "-j", 1, "-q") == 0
    assert label(a, b, "-o", out, "-m", tiny_model, "-j", 1, "-q", "--resume") == 0
    assert (out / "counts.csv").read_text() == (reference / "counts.csv").read_text()
    assert [r[:3] for r in rows_by_frame(out / "counts.csv")] == \
        [(str(i), "a.dump", str(i)) for i in range(N_FRAMES)] + [(str(i + 4), "b.dump", str(i)) for i in range(4)]
    assert not (out / "counts.errors.csv").exists()


def test_resume_refuses_other_frames_model_or_options(inputs, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert label(inputs / "traj.dump", inputs / "mixed.xyz", "-o", out, "-m", tiny_model, "-j", 1, "-q") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    other_model = tmp_path / "other.onnx"  # the same classes, another file content
    proto = onnx.load(str(tiny_model))
    next(p for p in proto.metadata_props if p.key == "atomclass.summary").value = '{"retrained": true}'
    other_model.write_bytes(proto.SerializeToString())
    attempts = [
        ((inputs / "mixed.xyz", inputs / "traj.dump", "-m", tiny_model, "--format", "lammps/dump"),
         f"frame 0 was frame 0 of {inputs / 'traj.dump'} and is now frame 0 of {inputs / 'mixed.xyz'}"),
        ((inputs / "traj.dump", inputs / "mixed.xyz", "-m", other_model), "model_sha256"),
        ((inputs / "traj.dump", inputs / "mixed.xyz", "-m", tiny_model, "--threshold", "0.5"),
         "threshold 0.4, now 0.5"),
        ((inputs / "traj.dump", inputs / "mixed.xyz", "-m", tiny_model, "--probabilities"), "probabilities False"),
    ]
    for argv, message in attempts:
        assert label(*argv, "-o", out, "-j", 1, "-q", "--resume") == 2
        err = capsys.readouterr().err
        assert "cannot resume" in err and message in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_second_run_into_a_busy_folder_is_refused(inputs, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert label(inputs / "traj.dump", "-o", out, "-m", tiny_model, "-j", 1, "-q") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with labelling._locked({out}, out / "counts.run.json"):  # a run in progress
        for again in ("--resume", "--overwrite"):
            assert label(inputs / "traj.dump", "-o", out, "-m", tiny_model, "-j", 1, "-q", again) == 1
            err = capsys.readouterr().err
            assert f"another atomclass label run (process {os.getpid()} on " in err and f"is writing into {out}" in err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert label(inputs / "traj.dump", "-o", out, "-m", tiny_model, "-j", 1, "-q", "--overwrite") == 0


def test_counts_cut_short_are_recovered_and_malformed_rows_named(inputs, tiny_model, tmp_path, capsys):
    out, reference = tmp_path / "out", tmp_path / "reference"
    assert label(inputs / "traj.dump", "-o", reference, "-m", tiny_model, "-j", 1, "-q") == 0
    shutil.copytree(reference, out)
    text = (reference / "counts.csv").read_text()
    (out / "counts.csv").write_text(text[:-9])  # the last row cut inside a fraction
    assert label(inputs / "traj.dump", "-o", out, "-m", tiny_model, "-j", 1, "--resume") == 0
    captured = capsys.readouterr()
    assert f"{out / 'counts.csv'}, line {N_FRAMES + 1}: the last row is cut short" in captured.err
    assert "labelled 1 frames" in captured.out and (out / "counts.csv").read_text() == text
    lines = text.splitlines(keepends=True)
    for broken, problem in [("x" + lines[2][1:], "frame is 'x', not a whole number"),
                            (",".join(lines[2].split(",")[:4]) + "\n", "4 fields, not 15"),
                            (lines[1], "frame 0 has a row already")]:
        (out / "counts.csv").write_text("".join(lines[:2] + [broken] + lines[3:]))
        assert label(inputs / "traj.dump", "-o", out, "-m", tiny_model, "-j", 1, "-q", "--resume") == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"atomclass label: error: {out / 'counts.csv'}, line 3: {problem}")
        assert len(err.splitlines()) == 1


def test_a_file_name_with_wildcard_characters_is_a_file(inputs, tiny_model, tmp_path):
    shutil.copy(inputs / "traj.dump", tmp_path / "dump[1].dump")
    shutil.copy(inputs / "mixed.xyz", tmp_path / "dump1.dump")  # what the name matches as a pattern
    out = tmp_path / "out"
    assert label(tmp_path / "dump[1].dump", "-o", out, "-m", tiny_model, "-j", 1, "-q") == 0
    assert {r[1] for r in rows_by_frame(out / "counts.csv")} == {"dump[1].dump"}
    assert label(tmp_path / "dump[1].dump", tmp_path / "dump?].dump", "-o", tmp_path / "o2", "-m", tiny_model,
                 "-q") == 2  # the same file twice


def test_every_input_column_is_kept_with_its_type(tiny_model, tmp_path):
    atoms = l12_ni3al(repeat=3)
    side = atoms.cell.array[0, 0]
    header = ["ITEM: TIMESTEP", "0", "ITEM: NUMBER OF ATOMS", str(len(atoms)), "ITEM: BOX BOUNDS pp pp pp",
              *[f"0 {side}"] * 3, "ITEM: ATOMS id type element x y z molecule truth q"]
    rows = [f"{i + 1} {1 + (s == 'Al')} {s} {x:.6f} {y:.6f} {z:.6f} {i // 4 + 1} {3 - 2 * (s == 'Al')} "
            f"{0.5 - 2.25 * (s == 'Al')}" for i, (s, (x, y, z)) in enumerate(zip(atoms.get_chemical_symbols(),
                                                                                   atoms.positions, strict=True))]
    (tmp_path / "in.dump").write_text("\n".join(header + rows) + "\n")
    assert label(tmp_path / "in.dump", "-o", tmp_path / "out", "-m", tiny_model, "-q") == 0
    written = (tmp_path / "out" / "frame_000000.dump").read_text().splitlines()
    assert written[8] == "ITEM: ATOMS id type x y z molecule truth q StructureType element"
    table = [line.split() for line in written[9:]]
    assert [t[5:8] + t[9:] for t in table] == [r.split()[6:] + [r.split()[2]] for r in rows]
    assert {t[8] for t in table} == {"3"}  # gamma_prime


def test_a_cell_with_inverted_bounds_is_an_error(inputs, tiny_model, tmp_path, capsys):
    dump = (inputs / "traj.dump").read_text().splitlines(keepends=True)[: len(
        (inputs / "traj.dump").read_text().splitlines()) // N_FRAMES]
    assert dump[4].startswith("ITEM: BOX BOUNDS abc origin") and dump[7].split()[2] != "0.0"
    c = dump[7].split()
    dump[7] = f"{c[0]} {c[1]} -{c[2]} {c[2]}\n"  # zlo = c, zhi = 0
    (tmp_path / "inverted.dump").write_text("".join(dump))
    assert label(tmp_path / "inverted.dump", "-o", tmp_path / "out", "-m", tiny_model, "-q") == 1
    err = capsys.readouterr().err
    assert "inverted.dump, frame 0: the cell is left-handed" in err and "zlo > zhi" in err


def test_workers_are_capped_at_the_cores_and_the_frames(capsys):
    cores = labelling.available_cores()
    args = argparse.Namespace(workers=1000, quiet=False)
    assert labelling._workers(args, 12) == min(cores, 12)
    assert f"{min(cores, 12)} worker process" in capsys.readouterr().err
    assert labelling._workers(args, 1) == 1 and "not 1000: " in capsys.readouterr().err
    assert labelling._workers(argparse.Namespace(workers=None, quiet=False), 500) == cores
    assert capsys.readouterr().err == ""
