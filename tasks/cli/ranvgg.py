"""The ``ranvgg`` command: one subcommand per task module, dispatched from a table.

    ranvgg invert --image astronaut --layer pool3      # = python -m tasks.invert ...
    ranvgg --help | --version

Each subcommand is ``tasks.<module>.main(argv)`` with the same options as ``python -m
tasks.<module>``. A module not present in this installation is listed all the same and,
when called, says so in one line (exit status 2).
"""
from __future__ import annotations

import importlib
import sys

import engine
import tasks

from .console import guarded_stdout

# name -> (module, one line for --help). Enable a command by adding its row.
COMMANDS = {
    "invert": ("tasks.invert", "reconstruct an image from one layer's representation (Eq. 1)"),
    "texture": ("tasks.texture", "synthesise a texture by matching Gram matrices (Eq. 5-8)"),
    "style": ("tasks.style", "paint one image's content in another's style (Eq. 9)"),
    "stack": ("tasks.stack", "build the greedy stacked ranVGG and write its recipe (.json)"),
    "gradcheck": ("tasks.gradcheck", "check every gradient against finite differences"),
    "weights": ("tasks.weights", "convert trained VGG-19 weights to .npz, show what a file holds"),
    "experiments": ("tasks.experiments", "rerun the paper's figures: runs, CSV and summary"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:{width}s}  {line}" for name, (_, line) in COMMANDS.items())
    return (f"usage: ranvgg COMMAND [options]   (ranvgg COMMAND --help for its options)\n\n"
            f"Deep image representation with an untrained, random-weight VGG-19\n"
            f"(He, Wang & Hopcroft, NIPS 2016).\n\ncommands:\n{rows}\n\n"
            f"  --version  print the version and exit\n\n"
            f"Without installing: python -m tasks COMMAND [options] (from the source folder).\n")


def version() -> str:
    """The installed package's version, else the source's (a checkout that is not installed)."""
    try:
        from importlib.metadata import PackageNotFoundError, version as installed
        return installed("ranvgg")
    except PackageNotFoundError:
        return engine.__version__


def foreign_packages() -> str | None:
    """A one-line error when ``engine`` or ``tasks`` is not ranvgg's own (another package of
    that name, or a folder left behind by an earlier install, found first on the path)."""
    for module in (engine, tasks):
        if getattr(module, "__ranvgg__", False) is not True:
            where = getattr(module, "__file__", None) or ", ".join(getattr(module, "__path__", [])) or "?"
            return (f"error: the Python package {module.__name__!r} found at {where} is not ranvgg's "
                    f"(another package of that name, or a folder left by an earlier install); "
                    f"remove it or reinstall ranvgg in a fresh virtual environment")
    return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    foreign = foreign_packages()
    if foreign:
        print(foreign, file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"ranvgg {version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; use one of {', '.join(COMMANDS)} "
              f"(see ranvgg --help)", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # a missing dependency inside the module is a real error, not ours to hide
        print(f"error: 'ranvgg {name}' is not available in this version ({module_name} is "
              f"not installed); update ranvgg", file=sys.stderr)
        return 2
    parser = getattr(module, "PARSER", None)
    if parser is not None:
        parser.prog = f"ranvgg {name}"  # --help and errors name the command the user typed
    with guarded_stdout():  # a closed or full stdout (| head, > /dev/full) never raises
        return module.main(rest)
