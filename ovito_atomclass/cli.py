"""The ``atomclass`` command line: ``atomclass label`` and ``atomclass train``.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; only the module of the subcommand that runs is imported.  Every
subcommand takes ``-q`` (errors only) and ``-v`` (more detail, and the traceback of an
error), read by its module as ``args.quiet`` and ``args.verbose``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import traceback

from . import __version__

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DESCRIPTION = "Machine-learned structure identification of atoms: label trajectories with a model, or train one."
# subcommand: (module, help, the extra that installs what the module needs)
SUBCOMMANDS = {
    "label": ("ovito_atomclass.labelling", "label the frames of MD trajectories with a model", None),
    "train": ("ovito_atomclass.training", "build a training set, tune classifiers, export an ONNX model", "train"),
}
EPILOG = ("exit codes: 0 success, 1 failure (a frame or the training failed), 2 usage error, "
          "130 interrupted")


class UsageError(Exception):
    """A problem with the command line: reported with exit code 2."""


def main(argv: list[str] | None = None) -> int:
    """Run the ``atomclass`` command line with ``argv`` (default: ``sys.argv[1:]``) and
    return its exit code (``EXIT_OK``, ``EXIT_FAILURE``, ``EXIT_USAGE`` or
    ``EXIT_INTERRUPTED``); ``--help`` and ``--version`` exit through ``SystemExit``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="atomclass", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    loudness = common.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true",
                          help="print errors only: no progress bars, status lines or summary")
    loudness.add_argument("-v", "--verbose", action="store_true",
                          help="more detail: what the run uses, a line per step, the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{label,train}")
    # the first word naming a subcommand is the one that runs: only its module is imported
    chosen = next((word for word in argv if word in SUBCOMMANDS), None)
    module = None
    for name, (module_name, help_text, extra) in SUBCOMMANDS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG, parents=[common])
        if name == chosen:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if extra is None or (exc.name or "").startswith("ovito_atomclass"):
                    raise
                print(f"atomclass {name}: needs {exc.name}, which the [{extra}] extra installs:\n"
                      f"    pip install 'ovito-atomclass[{extra}]'", file=sys.stderr)
                return EXIT_FAILURE
            module.add_arguments(subparser)
    args = parser.parse_args(argv)
    try:
        with _compile_notice(args):
            return int(module.run(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("atomclass: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        _report(args, exc)
        return EXIT_USAGE
    except (ValueError, OSError, RuntimeError) as exc:
        _report(args, exc)
        return EXIT_FAILURE


def _compile_notice(args: argparse.Namespace):
    """A context that prints one line on stderr when numba starts compiling the feature
    kernels (the first run after installing), unless ``-q``."""
    if args.quiet:
        return contextlib.nullcontext()
    from .warmup import COMPILING, on_compile

    return on_compile(lambda: print(f"atomclass {args.command}: {COMPILING}", file=sys.stderr, flush=True))


def _report(args: argparse.Namespace, exc: Exception) -> None:
    """One line on stderr naming the subcommand and the problem; with ``-v`` the traceback first."""
    if args.verbose:
        traceback.print_exception(exc)
    print(f"atomclass {args.command}: error: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
