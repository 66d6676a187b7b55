"""What every pahs console script shares: one-line user errors, --debug, WxH parsing."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import typer

from .errors import PahsError

DEBUG_HELP = "Show the full traceback of errors."
# Typer vendors click in recent versions and imports it in older ones: find its exception base either way.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

Main = Callable[[Sequence[str] | None], int]


def new_app(help_text: str) -> typer.Typer:
    """A Typer app with our conventions (no rich tracebacks: errors are one line unless --debug)."""
    return typer.Typer(
        help=help_text,
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def entry_point(app: typer.Typer, prog_name: str) -> Main:
    """``main(argv=None) -> int`` for ``app``: runs in-process (``argv`` None: ``sys.argv[1:]``) and returns the
    exit status. A :class:`PahsError` prints ``prog: error: ...`` and gives 2 (the traceback with --debug);
    usage errors print click's message and give its status; an interrupt gives 130."""

    def main(argv: Sequence[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in args
        try:
            status = app(args=args, prog_name=prog_name, standalone_mode=False)
        except PahsError as e:
            if debug:
                raise
            print(f"{prog_name}: error: {e}", file=sys.stderr)
            return 2
        except _CLICK_EXCEPTION as e:
            e.show()
            return e.exit_code
        except (KeyboardInterrupt, typer.Abort):
            if debug:
                raise
            print(f"{prog_name}: interrupted", file=sys.stderr)
            return 130
        return status if isinstance(status, int) else 0

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
