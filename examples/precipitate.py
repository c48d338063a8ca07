"""The reference study: an L1_2 Ni3Al (gamma_prime) sphere in fcc Ni, labelled by the OVITO modifier.

Builds the 4000-atom precipitate of ``ovito_atomclass.crystals.precipitate`` (fcc Ni,
a = 3.52 Å, 10x10x10 cubic cells, Al on the cube corners within 10 Å of the centre),
classifies every atom with ``AtomClassifierModifier``, prints the fraction of each class
next to the reference study's, selects the ``gamma`` atoms, writes the labelled structure
(extended XYZ) and renders two pictures: the gamma_prime sphere and the gamma shell around it.

    python examples/precipitate.py [--model models/seed.onnx] [--out out/precipitate] [--no-render]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from ovito.io.ase import ase_to_ovito
from ovito.modifiers import (
    ClearSelectionModifier,
    ColorByTypeModifier,
    DeleteSelectedModifier,
    InvertSelectionModifier,
    SelectTypeModifier,
    SliceModifier,
)
from ovito.pipeline import Pipeline, StaticSource

from ovito_atomclass.crystals import precipitate
from ovito_atomclass.labelling import export_frame
from ovito_atomclass.model import models_dir
from ovito_atomclass.modifier import ATTRIBUTE_PREFIX, AtomClassifierModifier, resolve_model

REFERENCE = {"fccNi": 84.03, "gamma_prime": 9.83, "gamma": 6.15}  # % of atoms, the reference study
VIEW = np.array([-1.0, -0.8, -0.6]) / np.linalg.norm([-1.0, -0.8, -0.6])  # camera direction
ENABLE_RENDERING = ("OVITO renders through Vulkan, also without a GPU. To get the pictures on Debian/Ubuntu run\n"
                    "    sudo apt-get install libvulkan1 mesa-vulkan-drivers\n"
                    "and run this script again; everything else above is complete.")


def fractions(attributes: dict) -> dict[str, float]:
    """Percentage of atoms per class from the modifier's ``AtomClassifier.counts.*`` attributes."""
    counts = {k[len(ATTRIBUTE_PREFIX):]: v for k, v in attributes.items() if k.startswith(ATTRIBUTE_PREFIX)}
    total = sum(counts.values())
    return {name: 100.0 * n / total for name, n in counts.items()}


def report(percent: dict[str, float]) -> str:
    lines = [f"{'class':<14}{'this model':>12}{'reference':>12}"]
    for name in sorted(set(percent) | set(REFERENCE), key=lambda c: -percent.get(c, 0.0)):
        ref = f"{REFERENCE[name]:11.2f}%" if name in REFERENCE else f"{'-':>12}"
        lines.append(f"{name:<14}{percent.get(name, 0.0):11.2f}%{ref}")
    return "\n".join(lines)


def keep_only(pipeline: Pipeline, classes: set[str]) -> Pipeline:
    """A copy of ``pipeline`` showing only atoms of the structure classes ``classes``,
    coloured by structure type."""
    view = Pipeline(source=StaticSource(data=pipeline.source.data.clone()))
    view.source.data.cell_.vis.enabled = False
    view.modifiers.extend(pipeline.modifiers)
    view.modifiers.append(ColorByTypeModifier(property="Structure Type"))
    view.modifiers.append(SelectTypeModifier(property="Structure Type", types=classes))
    view.modifiers.append(InvertSelectionModifier())
    view.modifiers.append(DeleteSelectedModifier())
    return view


def render(pipeline: Pipeline, path: Path, centre: np.ndarray, caption: str, size=(900, 700)) -> None:
    """Render ``pipeline`` alone, looking at ``centre`` (Å), with ``caption`` and a legend
    of the structure types, to the PNG ``path`` through a temporary file and a rename."""
    from ovito.qt_compat import QtCore
    from ovito.vis import ColorLegendOverlay, TachyonRenderer, TextLabelOverlay, Viewport

    pipeline.add_to_scene()
    try:
        viewport = Viewport(type=Viewport.Type.Perspective, camera_dir=tuple(VIEW), fov=np.radians(30.0),
                            camera_pos=tuple(centre - 70.0 * VIEW))
        viewport.overlays.append(TextLabelOverlay(text=caption, pipeline=pipeline, font_size=0.04,
                                                  text_color=(0.0, 0.0, 0.0), offset_x=0.01, offset_y=-0.01))
        viewport.overlays.append(ColorLegendOverlay(
            property="particles/Structure Type", pipeline=pipeline, title="Structure Type", font_size=0.06,
            label_size=0.9, orientation=QtCore.Qt.Orientation.Vertical, legend_size=0.45, offset_x=-0.01,
            alignment=QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignBottom))
        partial = path.with_name(f".{path.stem}.partial.png")
        try:
            viewport.render_image(filename=str(partial), size=size, background=(1.0, 1.0, 1.0),
                                  renderer=TachyonRenderer(ambient_occlusion_brightness=0.9))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    finally:
        pipeline.remove_from_scene()


def render_pictures(labelled: Pipeline, out: Path, centre: np.ndarray) -> list[Path]:
    """The gamma_prime sphere, and the gamma shell with its half facing the camera cut away
    to show the sphere inside."""
    sphere = keep_only(labelled, {"gamma_prime"})
    shell = keep_only(labelled, {"gamma", "gamma_prime"})
    shell.modifiers.append(SliceModifier(normal=tuple(-VIEW), distance=float(-VIEW @ centre)))
    pictures = {
        out / "gamma_prime_sphere.png": (sphere, "gamma_prime: [AtomClassifier.counts.gamma_prime] atoms"),
        out / "gamma_shell.png": (shell, "gamma shell: [AtomClassifier.counts.gamma] atoms (near half cut away)"),
    }
    for path, (pipeline, caption) in pictures.items():
        render(pipeline, path, centre, caption)
    return list(pictures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(models_dir() / "seed.onnx"), help="ONNX model (default: %(default)s)")
    parser.add_argument("--out", default="out/precipitate", help="output folder (default: %(default)s)")
    parser.add_argument("--no-render", action="store_true", help="skip the pictures")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    try:
        model = resolve_model(args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"precipitate: {exc}\n(train a model with `atomclass train`, or pass --model FILE)", file=sys.stderr)
        return 1
    atoms = precipitate()
    pipeline = Pipeline(source=StaticSource(data=ase_to_ovito(atoms)))
    pipeline.modifiers.append(AtomClassifierModifier(model_file=str(model.path)))
    data = pipeline.compute()
    print(f"{len(atoms)} atoms, model {model.path.name} ({', '.join(model.classes)})\n"
          f"{report(fractions(data.attributes))}")

    pipeline.modifiers.append(SelectTypeModifier(property="Structure Type", types={"gamma"}))
    selected = pipeline.compute()
    print(f"selected {selected.attributes['SelectType.num_selected']} gamma atoms")
    labelled = out / "precipitate_labelled.xyz"
    export_frame(selected, labelled, "xyz")
    print(f"labelled structure: {labelled}")
    pipeline.modifiers.append(ClearSelectionModifier())

    if args.no_render:
        return 0
    try:
        pictures = render_pictures(pipeline, out, atoms.cell.array.sum(axis=0) / 2)
    except RuntimeError as exc:
        if "Vulkan" not in str(exc):
            raise
        print(f"precipitate: cannot render here: {str(exc).splitlines()[0]}\n{ENABLE_RENDERING}", file=sys.stderr)
        return 0
    print("pictures: " + ", ".join(map(str, pictures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
