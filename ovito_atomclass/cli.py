"""The ``atomclass`` command line: ``atomclass train`` and ``atomclass label``.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; only the module of the subcommand that runs is imported.
"""

from __future__ import annotations

import argparse
import importlib
import sys

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SUBCOMMANDS = {
    "train": ("ovito_atomclass.training", "build a training set, tune classifiers, export an ONNX model"),
    "label": ("ovito_atomclass.labelling", "label the frames of MD trajectories with a model"),
}
EPILOG = ("exit codes: 0 success, 1 failure (a frame or the training failed), 2 usage error, "
          "130 interrupted")


class UsageError(Exception):
    """A problem with the command line: reported with exit code 2."""


def main(argv: list[str] | None = None) -> int:
    """Run the ``atomclass`` command line with ``argv`` (default: ``sys.argv[1:]``); returns
    the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="atomclass", description=__doc__.splitlines()[0], epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)
    # the first word naming a subcommand is the one that runs: only its module is imported
    chosen = next((word for word in argv if word in SUBCOMMANDS), None)
    module = None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(subparser)
    args = parser.parse_args(argv)
    try:
        return int(module.run(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("atomclass: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"atomclass {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"atomclass {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
