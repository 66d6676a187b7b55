"""What every pahs console script shares: one-line user errors, --debug, WxH parsing."""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from .errors import PahsError

DEBUG_HELP = "Show the full traceback of errors."


def new_app(help_text: str) -> typer.Typer:
    """A Typer app with our conventions (no rich tracebacks: errors are one line unless --debug)."""
    return typer.Typer(
        help=help_text,
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def entry_point(app: typer.Typer, prog_name: str) -> Callable[[], None]:
    """Wrap ``app`` so that a :class:`PahsError` prints ``prog: error: ...`` and exits 2 (traceback with --debug)."""

    def main() -> None:
        debug = "--debug" in sys.argv[1:]
        try:
            app(prog_name=prog_name)
        except PahsError as e:
            if debug:
                raise
            print(f"{prog_name}: error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            if debug:
                raise
            print(f"{prog_name}: interrupted", file=sys.stderr)
            sys.exit(130)

    return main


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"WxH"`` into (width, height) positive ints."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise PahsError(f"expected a size as WIDTHxHEIGHT such as 640x368, found {text!r}") from None
    return w, h
