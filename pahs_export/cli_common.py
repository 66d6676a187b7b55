"""What every pahs console script shares: one-line user errors, --debug, WxH parsing."""

from __future__ import annotations

import errno
import signal
import sys
import traceback
from collections.abc import Callable, Sequence

import typer

from .errors import PahsError
from .files import DISK_ERRNOS

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


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def entry_point(app: typer.Typer, prog_name: str) -> Main:
    """``main(argv=None) -> int`` for ``app``: runs in-process (``argv`` None: ``sys.argv[1:]``) and returns the
    exit status. A :class:`PahsError` prints ``prog: error: ...`` and gives 2 (the traceback with --debug);
    usage errors print click's message and give its status; an interrupt prints ``prog: interrupted (SIGINT)``
    and gives 128 + the signal's number (130 for Ctrl-C; an exception carrying ``signum``, such as
    ``runtime.io.Interrupted``, names its signal); a disk error nobody turned into a PahsError (full, read-only,
    no permission) is one line too, and 2.

    The command runs through click's ``make_context``/``invoke`` rather than ``app(...)``: Typer's own main turns
    KeyboardInterrupt into a silent exit status 130, so the message could never print."""

    def main(argv: Sequence[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in args
        try:
            command = typer.main.get_command(app)
            with command.make_context(prog_name, args) as ctx:
                status = command.invoke(ctx)
        except PahsError as e:
            if debug:
                raise
            print(f"{prog_name}: error: {e}", file=sys.stderr)
            return 2
        except typer.Exit as e:  # raise typer.Exit(n) in a command, and --help
            return e.exit_code
        except _CLICK_EXCEPTION as e:
            e.show()
            return e.exit_code
        except (KeyboardInterrupt, typer.Abort, EOFError) as e:
            signum = getattr(e, "signum", signal.SIGINT)
            if debug:
                traceback.print_exc()
            print(f"{prog_name}: interrupted ({_signal_name(signum)})", file=sys.stderr)
            return 128 + signum
        except OSError as e:
            if e.errno == errno.EPIPE:  # stdout closed by the reader (`| head`): nothing more to say
                return 1
            if debug or e.errno not in DISK_ERRNOS:
                raise
            where = f" {e.filename}" if e.filename else ""
            print(
                f"{prog_name}: error: could not write{where}: {DISK_ERRNOS[e.errno]}; free space or choose "
                "a writable place (--debug shows where)",
                file=sys.stderr,
            )
            return 2
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
