"""The reference study: an L1_2 Ni3Al (gamma_prime) sphere in fcc Ni, labelled by the OVITO modifier.

Builds the 4000-atom precipitate of ``ovito_atomclass.crystals.precipitate`` (fcc Ni,
a = 3.52 Å, 10x10x10 cubic cells, Al on the cube corners within 10 Å of the centre),
classifies every atom with ``AtomClassifierModifier``, prints the fraction of each class
next to the reference study's, selects the ``gamma`` atoms, writes the labelled structure
(extended XYZ) and renders two pictures: the gamma_prime sphere and the gamma shell around it.
Where OVITO cannot render (no Vulkan), it draws a slice through the centre with matplotlib instead.
With the general model (``--model models/default.onnx``) the classes are ``fcc`` and ``L1_2``:
it selects and renders the L1_2 sphere inside the fcc matrix.

    python examples/precipitate.py [--model models/seed.onnx] [--out out/precipitate] [--no-render]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np
from ovito.io.ase import ase_to_ovito
from ovito.modifiers import (
    ColorByTypeModifier,
    DeleteSelectedModifier,
    InvertSelectionModifier,
    SelectTypeModifier,
    SliceModifier,
)
from ovito.pipeline import Pipeline, StaticSource

from ovito_atomclass.crystals import PRECIPITATE_REFERENCE as REFERENCE
from ovito_atomclass.crystals import precipitate
from ovito_atomclass.files import write_atomically
from ovito_atomclass.labelling import export_frame
from ovito_atomclass.model import counts_from_attributes, load_model, models_dir
from ovito_atomclass.modifier import AtomClassifierModifier

GENERAL = ("fcc", "L1_2", None)  # the general model's matrix and precipitate classes; it has no shell class
GREY = (0.35, 0.35, 0.35)
VIEW = np.array([-1.0, -0.8, -0.6]) / np.linalg.norm([-1.0, -0.8, -0.6])  # camera direction
ENABLE_RENDERING = ("OVITO renders through Vulkan, also without a GPU. To get the pictures on Debian/Ubuntu run\n"
                    "    sudo apt-get install libvulkan1 mesa-vulkan-drivers\n"
                    "and run this script again; everything else above is complete.")


def report(counts: dict[str, int]) -> str:
    """The percentage of each class found and of the reference study (for the model's
    classes that the study has); classes without atoms in either are listed on one line."""
    total = sum(counts.values())
    found = {c for c, n in counts.items() if n}
    shown = sorted(found | (set(REFERENCE) & set(counts)), key=lambda c: -counts.get(c, 0))
    lines = [f"{'class':<14}{'this model':>12}{'reference':>12}"]
    for name in shown:
        ref = f"{REFERENCE[name]:11.2f}%" if name in REFERENCE else f"{'-':>12}"
        lines.append(f"{name:<14}{100.0 * counts.get(name, 0) / total:11.2f}%{ref}")
    empty = sorted(set(counts) - set(shown))
    return "\n".join(lines + ([f"no atoms: {', '.join(empty)}"] if empty else []))


def keep_only(pipeline: Pipeline, classes: set[str]) -> Pipeline:
    """A copy of ``pipeline`` showing only atoms of the structure classes ``classes``,
    coloured by structure type, without the cell."""
    view = Pipeline(source=StaticSource(data=pipeline.source.data.clone()))
    view.source.data.cell_.vis.enabled = False
    view.modifiers.extend(pipeline.modifiers)
    view.modifiers.append(ColorByTypeModifier(property="Structure Type"))
    view.modifiers.append(SelectTypeModifier(property="Structure Type", types=classes))
    view.modifiers.append(InvertSelectionModifier())
    view.modifiers.append(DeleteSelectedModifier())
    return view


def render(pipeline: Pipeline, path: Path, centre: np.ndarray, labels: list[tuple[str, tuple]],
           size=(900, 700)) -> None:
    """Render ``pipeline`` alone, looking at ``centre`` (Å), with ``labels`` (lines of text,
    each with its RGB colour) at the top left, to the PNG ``path`` through a temporary file
    and a rename."""
    from ovito.vis import TachyonRenderer, TextLabelOverlay, Viewport

    pipeline.add_to_scene()
    try:
        viewport = Viewport(type=Viewport.Type.Perspective, camera_dir=tuple(VIEW), fov=np.radians(30.0),
                            camera_pos=tuple(centre + (0.0, 0.0, 3.0) - 75.0 * VIEW))  # scene a bit low: room for text
        for line, (text, color) in enumerate(labels):
            # OVITO measures the text a little short and clips the last letter: pad it
            viewport.overlays.append(TextLabelOverlay(text=text + "\u2002", font_size=0.04, text_color=color,
                                                      offset_x=0.01, offset_y=-0.01 - 0.055 * line))
        partial = path.with_name(f".{path.stem}.partial.png")
        try:
            viewport.render_image(filename=str(partial), size=size, background=(1.0, 1.0, 1.0),
                                  renderer=TachyonRenderer(ambient_occlusion_brightness=0.9))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    finally:
        pipeline.remove_from_scene()


def roles(classes: list[str]) -> tuple[str, str, str | None]:
    """The (matrix, precipitate, shell) class names of a model: the reference study's
    (fccNi, gamma_prime, gamma) or the general model's (fcc, L1_2, no shell)."""
    if "gamma_prime" in classes:
        return "fccNi", "gamma_prime", "gamma" if "gamma" in classes else None
    return GENERAL


def render_pictures(labelled: Pipeline, out: Path, centre: np.ndarray, counts: dict[str, int],
                    colors: dict[str, tuple]) -> list[Path]:
    """The precipitate sphere, and the shell around it (if the model has a shell class), the
    half facing the camera cut away; ``counts`` and ``colors`` (RGB) are per class name."""
    def count(name: str) -> tuple[str, tuple]:
        return f"{name}: {counts[name]} atoms", colors[name]

    matrix, sphere_class, shell_class = roles(list(colors))
    sphere = keep_only(labelled, {sphere_class})
    pictures = {out / f"{sphere_class}_sphere.png": (sphere, [count(sphere_class), (f"{matrix} atoms hidden", GREY)])}
    if shell_class is not None:
        shell = keep_only(labelled, {shell_class, sphere_class})
        shell.modifiers.append(SliceModifier(normal=tuple(-VIEW), distance=float(-VIEW @ centre)))
        pictures[out / f"{shell_class}_shell.png"] = (shell, [count(shell_class), count(sphere_class),
                                                             (f"{matrix} atoms hidden, near half cut away", GREY)])
    for path, (pipeline, labels) in pictures.items():
        render(pipeline, path, centre, labels)
    return list(pictures)


def slice_picture(data, path: Path, centre: np.ndarray, half_width: float = 0.88) -> Path:
    """Draw the atoms of ``data`` (a labelled OVITO DataCollection) within ``half_width`` (Å)
    of the (001) plane through ``centre`` (Å), coloured by structure type, Al atoms edged in
    black, to the PNG ``path`` (written atomically); the picture that needs no renderer."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    positions = np.asarray(data.particles.positions)
    structure = data.particles["Structure Type"]
    species = data.particles.particle_types
    al = np.asarray(species) == species.type_by_name("Al").id
    keep = np.abs(positions[:, 2] - centre[2]) < half_width
    fig = Figure(figsize=(6.0, 6.6), layout="constrained")
    ax = fig.add_subplot()
    for t in structure.types:
        mine = keep & (np.asarray(structure) == t.id)
        if mine.any():
            ax.scatter(*positions[mine, :2].T, s=60, color=t.color, label=f"{t.name}: {mine.sum()} atoms",
                       edgecolors=np.where(al[mine], "black", "none").tolist(), linewidths=1.2)
    ax.set(xlabel="x (Å)", ylabel="y (Å)", aspect="equal",
           title=f"(001) slice through the centre, z = {centre[2]:.2f} Å\nAl atoms edged in black")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=3, fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return write_atomically(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(models_dir() / "seed.onnx"), help="ONNX model (default: %(default)s)")
    parser.add_argument("--out", default="out/precipitate", help="output folder (default: %(default)s)")
    parser.add_argument("--no-render", action="store_true", help="skip the pictures")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    try:
        model = load_model(args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"precipitate: {exc}\n(train a model with `atomclass train`, or pass --model FILE)", file=sys.stderr)
        return 1
    atoms = precipitate()
    pipeline = Pipeline(source=StaticSource(data=ase_to_ovito(atoms)))
    pipeline.modifiers.append(AtomClassifierModifier(model_file=str(model.path)))
    data = pipeline.compute()
    counts = counts_from_attributes(data.attributes)
    print(f"{len(atoms)} atoms, model {model.path.name}\n{report(counts)}")

    _, sphere_class, shell_class = roles(model.classes)
    chosen = shell_class or sphere_class
    pipeline.modifiers.append(SelectTypeModifier(property="Structure Type", types={chosen}))
    selected = pipeline.compute()
    print(f"selected {selected.attributes['SelectType.num_selected']} {chosen} atoms")
    labelled = out / "precipitate_labelled.xyz"
    export_frame(selected, labelled, "xyz")
    print(f"labelled structure: {labelled}")

    if args.no_render:
        return 0
    centre = atoms.cell.array.sum(axis=0) / 2
    try:
        pictures = render_pictures(pipeline, out, centre, counts,
                                   dict(zip(model.classes, model.colors, strict=True)))
    except RuntimeError as exc:
        if "Vulkan" not in str(exc):
            raise
        print(f"precipitate: cannot render here: {str(exc).splitlines()[0]}\n{ENABLE_RENDERING}", file=sys.stderr)
        print(f"picture without rendering: {slice_picture(selected, out / 'precipitate_slice.png', centre)}")
        return 0
    print("pictures: " + ", ".join(map(str, pictures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
