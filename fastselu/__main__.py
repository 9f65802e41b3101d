"""Command line: ``python -m fastselu info``, ``python -m fastselu bench [...]`` and
``python -m fastselu demo [--plot FILE.png]``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m fastselu", description="fastselu tools")
    parser.add_argument(
        "command",
        choices=["info", "bench", "demo"],
        help="info: print the configuration; bench: run the benchmark (bench --help for options); "
        "demo: self-normalization through a deep SELU network (demo --help)",
    )
    # The bench options belong to fastselu._bench: pass everything after the command through.
    if not args or args[0] not in ("info", "bench", "demo"):
        parser.parse_args(args)  # prints usage, exits 2 (or 0 for --help)
    command, rest = args[0], args[1:]
    if command == "demo":
        from . import _demo

        return _demo.main(rest)
    if command == "info":
        if rest:
            parser.error(f"info takes no arguments, got {' '.join(rest)}")
        from . import show_config

        show_config()
        return 0
    try:
        _bench = importlib.import_module("fastselu._bench")
    except ModuleNotFoundError as exc:
        if exc.name != "fastselu._bench":
            raise
        print(
            "python -m fastselu bench: the benchmark module (fastselu._bench) is not available "
            "in this installation",
            file=sys.stderr,
        )
        return 2
    return int(_bench.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
