"""Classes taken from labelled trajectory frames: ``trajectory = {...}`` in a ``[[classes]]`` entry.

Frames of one's own MD are the best training data for one's own phases.  A
:class:`FrameSource` names frames of files OVITO reads and which of their atoms belong to the
class: those whose per-atom ``property`` has ``value``, those the OVITO expression ``select``
selects, or all.  Every frame is passed on whole with those atoms marked
(:data:`.dataset.MEMBERS`), so their features see all their neighbours; frames are not
perturbed unless ``augment`` is set (they are thermal already).  A :class:`TrajectoryClass`
is sampled evenly across its frames, may add augmented templates of a recipe, and records
what it read (files with their SHA-256, frames, selection, atoms) for the model's metadata
and card.  OVITO is imported only when frames are read.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from .augment import Augmentation, copies
from .crystals import Color, check_color
from .dataset import MEMBERS, configurations
from .features import check_species
from .spec import FeatureSet, FeatureSpec
from .systems import as_snapshot

SOURCE_KEYS = {"files", "frames", "property", "value", "select", "augment"}


@dataclass(frozen=True)
class FrameSource:
    """Atoms of a class in frames of trajectory files.

    ``files`` (paths, in order) are shown as ``names`` (as the configuration gives them);
    ``frames`` is a ``START:STOP:STEP`` slice of the frames numbered from 0 across the files,
    ``selected`` the (file index, frame in that file) pairs it picks.  The class's atoms are
    those whose ``property_name`` equals ``value`` (one value or a list; names for typed or text
    properties), or those the OVITO expression ``select`` selects, or all.  ``augment``:
    perturb every frame like a template.
    """

    files: tuple[Path, ...]
    names: tuple[str, ...]
    frames: str
    selected: tuple[tuple[int, int], ...]
    property_name: str | None = None
    value: tuple = ()
    select: str | None = None
    augment: bool = False

    @property
    def selection(self) -> str:
        """The selection in words, as the model card shows it."""
        if self.select is not None:
            return self.select
        if self.property_name is not None:
            shown = [repr(v) if isinstance(v, str) else str(v) for v in self.value]
            return f"{self.property_name} " + (f"== {shown[0]}" if len(shown) == 1 else f"in [{', '.join(shown)}]")
        return "all atoms"

    def frames_as_atoms(self, spec: FeatureSpec | FeatureSet) -> Iterator[tuple[int, int, Atoms]]:
        """``(file index, frame, atoms)`` for every selected frame: the whole frame as ASE
        ``Atoms`` (species coded as elements 1, 2, ...: only their equality matters) with the
        class's atoms marked in ``atoms.arrays[MEMBERS]``.  ValueError names the file and frame
        that cannot be read, lack the property or species, or whose expression OVITO rejects."""
        from ovito.io import import_file

        pipeline, current = None, None
        for i, k in self.selected:
            where = f"{self.files[i]}, frame {k}"
            if i != current:
                pipeline, current = import_file(str(self.files[i])), i
            try:
                data = pipeline.source.compute(k)
            except RuntimeError as exc:
                raise ValueError(f"{where}: cannot read it: {_one_line(exc)}") from None
            members = self._members(data, where)
            try:
                snapshot = as_snapshot(data)
                check_species(snapshot, spec)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            atoms = Atoms(numbers=snapshot.species_codes() + 1, positions=snapshot.positions, cell=snapshot.cell,
                          pbc=snapshot.pbc)
            atoms.arrays[MEMBERS] = members
            yield i, k, atoms

    def _members(self, data, where: str) -> np.ndarray:
        """Boolean (N,): the atoms of ``data`` (an OVITO DataCollection) this source selects."""
        particles = data.particles
        if self.select is not None:
            from ovito.modifiers import ExpressionSelectionModifier

            try:
                data.apply(ExpressionSelectionModifier(expression=self.select))
            except RuntimeError as exc:
                raise ValueError(f"{where}: OVITO rejects the expression {self.select!r}: {_one_line(exc)} "
                                 f"(the frame's particle properties: {', '.join(particles.keys())})") from None
            return np.asarray(data.particles["Selection"]) != 0
        if self.property_name is None:
            return np.ones(particles.count, dtype=bool)
        if self.property_name not in particles:
            raise ValueError(f"{where}: the frame has no particle property {self.property_name!r} "
                             f"(it has {', '.join(particles.keys())})")
        prop = particles[self.property_name]
        if prop.component_count > 1:
            raise ValueError(f"{where}: the property {self.property_name!r} has {prop.component_count} components; "
                             "select atoms by one of them with select = \"...\"")
        if getattr(prop.dtype, "kind", "") in "TUSO":  # text: compare as text
            return np.isin(np.array(list(prop), dtype=str), [str(v) for v in self.value])
        wanted = [v for v in self.value if not isinstance(v, str)]
        names = [v for v in self.value if isinstance(v, str)]
        if names:
            known = {t.name: t.id for t in prop.types}
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(f"{where}: the property {self.property_name!r} has no type named {unknown[0]!r} "
                                 f"(its types: {', '.join(map(str, known)) or 'none'})")
            wanted += [known[n] for n in names]
        return np.isin(np.asarray(prop), wanted)


def parse_source(table: dict, folder: Path, where: str) -> FrameSource:
    """A :class:`FrameSource` from one ``trajectory`` table of a configuration in ``folder``
    (relative file names and wildcards are taken from there); ValueError starts with ``where``."""
    from .cli import UsageError
    from .labelling import input_files, parse_frames, scan

    if not isinstance(table, dict):
        raise ValueError(f"{where}: trajectory must be a table, e.g. {{files = \"dump.lammpstrj\", select = \"...\"}}")
    unknown = sorted(set(table) - SOURCE_KEYS)
    if unknown:
        raise ValueError(f"{where}: trajectory does not know the key(s) {unknown}; "
                         f"known: {', '.join(sorted(SOURCE_KEYS))}")
    patterns = table.get("files")
    patterns = [patterns] if isinstance(patterns, str) else patterns
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"{where}: trajectory.files must name a file, a wildcard or a list of them")
    if ("property" in table) != ("value" in table) or ("select" in table and "property" in table):
        raise ValueError(f"{where}: choose the atoms with property and value, or with select, not {sorted(table)}")
    frames = str(table.get("frames", ":"))
    try:
        files = input_files([str(folder / p) for p in patterns])
        chosen = parse_frames(frames)
    except UsageError as exc:
        raise ValueError(f"{where}: {str(exc).replace('--frames', 'frames')}") from None
    counts = []
    for file in files:
        try:
            tasks, _ = scan(file)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        # the frames OVITO's index of the file reaches: up to a damaged frame, if any
        n = next((k for k, task in enumerate(tasks) if task.error or task.span), len(tasks))
        if n < len(tasks):
            warnings.warn(f"{where}: {tasks[n].error}; it and the {len(tasks) - n - 1} frame(s) after it are left out",
                          stacklevel=2)
        counts.append(n)
    everything = [(i, k) for i, n in enumerate(counts) for k in range(n)]
    selected = tuple(everything[chosen])
    if not selected:
        raise ValueError(f"{where}: frames = {frames!r} selects none of the {len(everything)} frames of "
                         f"{', '.join(patterns)}")
    value = table.get("value", [])
    value = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int | float | str) for v in value):
        raise ValueError(f"{where}: trajectory.value must be a number, a name or a list of them, got {value!r}")
    augment = table.get("augment", False)
    if not isinstance(augment, bool):
        raise ValueError(f"{where}: trajectory.augment must be true or false, got {augment!r}")
    names = tuple(os.path.relpath(f, folder.resolve()) for f in files)
    return FrameSource(tuple(files), names, frames, selected, table.get("property"), tuple(value),
                       table.get("select"), augment)


@dataclass
class TrajectoryClass:
    """A class whose atoms come from trajectory frames (``sources``), plus perturbed
    templates of ``base`` (a template class) if given.  Sampled evenly across its
    configurations; ``record`` holds what the last pass over the frames read."""

    name: str
    color: Color
    sources: tuple[FrameSource, ...]
    base: object | None = None
    record: list[dict] = field(default_factory=list)
    even_sampling = True

    def __post_init__(self) -> None:
        self.color = check_color(self.name, self.color)

    def n_configurations(self, augmentation: Augmentation) -> int:
        """Number of configurations :meth:`configurations` yields at most (frames without
        atoms of the class are skipped)."""
        frames = sum(len(s.selected) * (augmentation.copies if s.augment else 1) for s in self.sources)
        return frames + (augmentation.copies if self.base is not None else 0)

    def configurations(self, spec: FeatureSpec, augmentation: Augmentation,
                       rng: np.random.Generator) -> Iterator[tuple[float, Atoms]]:
        """``(stdev, atoms)``: the perturbed templates of ``base``, then every selected frame
        that holds atoms of the class (with ``augment``, its perturbed copies instead)."""
        if self.base is not None:
            yield from configurations(self.base, spec, augmentation, rng)
        self.record = []
        for number, source in enumerate(self.sources):
            where = f"class {self.name!r}, trajectory {number + 1}"
            atoms_of = {}
            for i, k, atoms in source.frames_as_atoms(spec):
                count = int(atoms.arrays[MEMBERS].sum())
                atoms_of.setdefault(i, []).append((k, count))
                if not count:
                    continue
                if source.augment:
                    yield from copies(lambda _, a=atoms: a, augmentation, rng)
                else:
                    yield 0.0, atoms
            total = sum(c for frames in atoms_of.values() for _, c in frames)
            if not total:
                raise ValueError(f"{where}: the selection {source.selection!r} matches no atom in the "
                                 f"{len(source.selected)} frame(s) {source.frames!r} of {', '.join(source.names)}")
            self.record.append({
                "files": [{"file": source.names[i], "sha256": sha256(source.files[i]),
                           "frames": [k for k, _ in frames], "atoms": [c for _, c in frames]}
                          for i, frames in atoms_of.items()],
                "frames": source.frames, "selection": source.selection, "augment": source.augment, "atoms": total})

    def provenance(self, augmentation: Augmentation) -> dict:
        """Where the class's atoms came from: the trajectory sources read (see
        :meth:`configurations`) and the number of perturbed templates."""
        return {"trajectories": self.record, "templates": augmentation.copies if self.base is not None else 0}


def trajectory_class(entry: dict, folder: Path, base) -> TrajectoryClass:
    """The class of a ``[[classes]]`` entry with a ``trajectory`` table (or a list of them),
    its templates from ``base`` (the class of the entry's recipe) or None."""
    name = str(entry["name"])
    if base is None:
        extra = sorted(set(entry) - {"name", "color", "trajectory"})
        if extra:
            raise ValueError(f"class {name!r}: {', '.join(extra)} need(s) a recipe (bulk, crystal, file, other); "
                             "trajectory frames are taken as they are")
        if entry.get("color") is None:
            raise ValueError(f"class {name!r}: a new class needs a color [r, g, b] in 0..1")
    tables = entry["trajectory"] if isinstance(entry["trajectory"], list) else [entry["trajectory"]]
    if not tables:
        raise ValueError(f"class {name!r}: trajectory names no frames")
    sources = tuple(parse_source(t, folder, f"class {name!r}, trajectory {n + 1}") for n, t in enumerate(tables))
    return TrajectoryClass(name, base.color if base is not None else entry["color"], sources, base)


def sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_lines(sources: dict) -> list[str]:
    """Model card lines describing the classes taken from trajectories (``summary["sources"]``)."""
    if not sources:
        return []
    lines = ["", "Classes from trajectory frames (frames are used as they are unless augmented; atoms are drawn "
             "evenly across a class's frames):", "",
             "| class | file | SHA-256 | frames | selection | augmented | atoms |", "|---|---|---|---|---|---|---|"]
    for name, source in sources.items():
        for read in source["trajectories"]:
            for f in read["files"]:
                lines.append(f"| {name} | `{f['file']}` | `{f['sha256']}` | {_ranges(f['frames'])} "
                             f"(`{read['frames']}`) | `{read['selection']}` | {'yes' if read['augment'] else 'no'} | "
                             f"{sum(f['atoms'])} |")
        if source["templates"]:
            lines.append(f"| {name} | and {source['templates']} perturbed templates of its recipe | | | | yes | |")
    return lines


def _ranges(frames: list[int]) -> str:
    """``[0, 2, 4, 6]`` as ``0-6 step 2``, ``[3, 4, 5]`` as ``3-5``, else the list."""
    if len(frames) > 2 and len(set(np.diff(frames))) == 1:
        step = frames[1] - frames[0]
        return f"{frames[0]}-{frames[-1]}" + (f" step {step}" if step > 1 else "")
    return ", ".join(map(str, frames))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
