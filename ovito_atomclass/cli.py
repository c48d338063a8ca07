"""The ``atomclass`` command line: ``atomclass label`` and ``atomclass train``.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; only the module of the subcommand that runs is imported.  Every
subcommand takes ``-q`` (errors only) and ``-v`` (more detail, and the traceback of an
error), read by its module as ``args.quiet`` and ``args.verbose``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

from . import __version__

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# interrupted by SIGINT (Ctrl-C) or SIGTERM (kill, a batch system's time limit): 128 + the signal number
EXIT_INTERRUPTED = 128 + signal.SIGINT
INTERRUPTING_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DESCRIPTION = "Machine-learned structure identification of atoms: label trajectories with a model, or train one."
# module, help text, whether the subcommand uses OVITO, and the extra that installs what the module needs
SUBCOMMANDS = {
    "label": ("ovito_atomclass.labelling", "label the frames of MD trajectories with a model", True, None),
    "train": ("ovito_atomclass.training", "build a training set, tune classifiers, export an ONNX model", False,
              "train"),
}
EPILOG = (f"exit codes: {EXIT_OK} success, {EXIT_FAILURE} failure (a frame or the training failed), {EXIT_USAGE} "
          f"usage error, {EXIT_INTERRUPTED} interrupted (Ctrl-C, SIGINT), {128 + signal.SIGTERM} terminated (SIGTERM)")


class UsageError(Exception):
    """A problem with the command line: reported with exit code 2."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# the signals that came while interrupts are deferred (deferred_interrupts), None when they are not
_deferred: list[int] | None = None
DEFERRED_MESSAGE = b"atomclass: interrupted; finishing the frames in progress (interrupt again to stop at once)\n"


def _raise_interrupted(signum: int, frame) -> None:
    if _deferred is not None and not _deferred:
        _deferred.append(signum)
        os.write(2, DEFERRED_MESSAGE)  # not print: this may run in the middle of another write to stderr
        return
    raise Interrupted(signum)


@contextmanager
def deferred_interrupts() -> Iterator[Callable[[], int | None]]:
    """Within the block, a first SIGINT or SIGTERM (under :func:`interruptible`) is recorded
    and announced instead of raised, so that no KeyboardInterrupt lands in the middle of a
    frame; the yielded function returns its number (None before one came), for the caller to
    stop where it chooses.  A second one raises at once; one still pending when the block
    ends is raised then."""
    global _deferred
    outer, _deferred = _deferred, []
    came = _deferred
    try:
        yield lambda: came[0] if came else None
    finally:
        _deferred = outer
    if came:
        raise Interrupted(came[0])


@contextmanager
def interruptible(uses_ovito: bool) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread,
    even when the parent process ignored them (a background job of a script).

    The first ``import ovito`` installs OVITO's own SIGINT handler, which calls the handler
    it replaced as a function: when that was SIG_IGN (address 1), SIGINT segfaults the
    process.  OVITO installs it only once, so importing ovito before ours goes in is enough."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if uses_ovito:
        import ovito  # noqa: F401
    previous = {s: signal.signal(s, _raise_interrupted) for s in INTERRUPTING_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def ignore_interrupts() -> None:
    """Let this (worker) process ignore SIGINT and SIGTERM, so that the parent alone decides
    how to stop; ovito is imported first, for the reason given in :func:`interruptible`."""
    import ovito  # noqa: F401

    for s in INTERRUPTING_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    """Run the ``atomclass`` command line with ``argv`` (default: ``sys.argv[1:]``) and
    return its exit code (``EXIT_OK``, ``EXIT_FAILURE``, ``EXIT_USAGE``, or 128 + the
    signal when interrupted); ``--help`` and ``--version`` exit through ``SystemExit``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="atomclass", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    loudness = common.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true",
                          help="print errors only: no progress bars, notes, status lines or summary")
    loudness.add_argument("-v", "--verbose", action="store_true",
                          help="more detail: what the run uses, a line per step, the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{label,train}")
    # the first word naming a subcommand is the one that runs: only its module is imported
    chosen = next((word for word in argv if word in SUBCOMMANDS), None)
    module = None
    for name, (module_name, help_text, _, extra) in SUBCOMMANDS.items():
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
        with interruptible(SUBCOMMANDS[args.command][2]), _compile_notice(args):
            return int(module.run(args) or EXIT_OK)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print("atomclass: interrupted" + (f" by {signal.Signals(signum).name}" if signum != signal.SIGINT else ""),
              file=sys.stderr)
        return 128 + signum
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
        return nullcontext()
    from .warmup import COMPILING, on_compile

    return on_compile(lambda: print(f"atomclass {args.command}: {COMPILING}", file=sys.stderr, flush=True))


def _report(args: argparse.Namespace, exc: Exception) -> None:
    """One line on stderr naming the subcommand and the problem; with ``-v`` the traceback first."""
    if args.verbose:
        traceback.print_exception(exc)
    print(f"atomclass {args.command}: error: {exc}", file=sys.stderr)


if __name__ == "__main__":
    # python -m ovito_atomclass.cli: run main of the package's own module, not of this copy
    # (__main__), whose signal-handling state the labelling module would not see
    from ovito_atomclass.cli import main as package_main

    sys.exit(package_main())
