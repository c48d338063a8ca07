"""The ``atomclass`` command line: ``atomclass train`` and ``atomclass label``.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``.  Exit codes: 0 success, 1 failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "train": ("ovito_atomclass.training", "build a training set, tune classifiers, export an ONNX model"),
    "label": ("ovito_atomclass.labelling", "label the frames of MD trajectories with a model"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="atomclass", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        modules[name] = importlib.import_module(module)
        modules[name].add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].run(args) or 0)
    except KeyboardInterrupt:
        print("atomclass: interrupted", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError, OSError) as exc:
        print(f"atomclass {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
