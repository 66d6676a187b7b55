"""What every pahs console script shares, so that every command spells every option the same way.

- :func:`new_app` and :func:`entry_point`: one-line user and usage errors, ``--debug``, ``--version`` on every
  command (added by the entry point), ``-h``/``--help``, shell completion (``--install-completion``,
  ``--show-completion``; the ``_PROG_NAME_COMPLETE`` variable);
- the options several commands take, with one name and one meaning: ``--preset/-p`` (:data:`PresetOpt`),
  ``--device`` (:func:`device_option`), ``--quiet/-q`` (:data:`QuietOpt`), ``--precision`` and its ``--fp16``
  / ``--int8`` aliases (:func:`precision_option`, :data:`Fp16Opt`, :data:`Int8Opt`,
  :func:`precision_from_flags`), ``--debug`` (:data:`DebugOpt`);
- :func:`choices`: an option with a fixed set of values (``--help`` lists them, parsing refuses others,
  completion offers them); :func:`value_of` turns what the command receives back into a plain string;
- :func:`parse_size`: ``WxH``;
- ``--help`` in Rich's boxes on a terminal, plain text (greppable, 80 columns) anywhere else.

A command adopts them like this (``None`` is "the default": defaults are stated in help texts, not in code)::

    app = new_app("What the program does.")
    Backend = choices("Backend", OPENERS)

    @app.command()
    def run(
        preset: PresetOpt = None,
        backend: Annotated[Optional[Backend], typer.Option("--backend", "-b", help="... (default ...).")] = None,
        device: Annotated[Optional[str], device_option("cpu")] = None,
        precision: Annotated[Optional[Precision], precision_option("What to run (default fp32).")] = None,
        fp16: Fp16Opt = False,
        int8: Int8Opt = False,
        quiet: QuietOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        prec = precision_from_flags(precision, fp16, int8)  # "fp16", ... or None
        name = value_of(backend)  # "torch", ... or None

    main = entry_point(app, "pahs-run")
"""

from __future__ import annotations

import errno
import importlib.util
import os
import platform
import re
import signal
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pahs_export.atomic import DISK_ERRNOS
from pahs_export.contract import PRECISIONS
from pahs_export.errors import PahsError
from pahs_export.presets import DEFAULT_PRESET, PRESETS
from pahs_export.signals import signal_name, termination_handlers

DEBUG_HELP = "Show the full traceback of errors."
QUIET_HELP = "No progress bars or messages on stderr; results and errors still print."
VERSION_HELP = "Show the version of pahs and of torch, onnxruntime, openvino and tensorrt, and exit."
DEVICES_TEXT = "cpu, cuda or cuda:N"
# Typer vendors click in recent versions and imports it in older ones: find its exception base either way.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
# The libraries whose versions `--version` shows, with the distributions that may provide each.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"),
    "openvino": ("openvino",),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11"),
}

Main = Callable[[Sequence[str] | None], int]


def choices(name: str, values: Iterable[str]) -> type[Enum]:
    """An Enum of ``values`` (each member's name and value is the string) for a typer option or argument:
    ``--help`` lists the values, parsing refuses any other with a one-line usage error, completion offers them.
    The command receives a member (or a list of members): :func:`value_of` gives back the string."""
    return Enum(name, [(v, v) for v in values], type=str)  # type: ignore[return-value]


def value_of(choice: Enum | str | None) -> str | None:
    """The string a :func:`choices` option was given (None stays None: "the default")."""
    return choice.value if isinstance(choice, Enum) else choice


def values_of(chosen: Iterable[Enum | str] | None) -> list[str] | None:
    """The strings a repeatable :func:`choices` option was given (None or nothing: None, "the default")."""
    strings = [value_of(c) for c in chosen or ()]
    return strings or None  # type: ignore[return-value]


Preset = choices("Preset", PRESETS)
Precision = choices("Precision", PRECISIONS)


def preset_option(help_text: str = f"Model preset (default {DEFAULT_PRESET}; with a checkpoint: its preset).") -> Any:
    """``--preset/-p``: a model preset (:data:`Preset`)."""
    return typer.Option("--preset", "-p", help=help_text, show_default=False)


def precision_option(help_text: str) -> Any:
    """``--precision``: fp32, fp16 or int8 (:data:`Precision`; ``help_text`` says what it picks and its default).
    Pair it with :data:`Fp16Opt` / :data:`Int8Opt` and :func:`precision_from_flags`."""
    return typer.Option("--precision", help=help_text)


def _check_device(ctx: typer.Context, value: Optional[str]) -> Optional[str]:
    if value is not None and not ctx.resilient_parsing:  # not while completing a command line
        from pahs_export.checkpoint import parse_device  # torch: only when a device is given (start-up time)

        parse_device(value)
    return value


def device_option(default_text: str, what: str = "") -> Any:
    """``--device``: cpu, cuda or cuda:N (``what``: what it picks; ``default_text``: its default), checked as it
    is parsed (:func:`~pahs_export.checkpoint.parse_device`: a one-line error for anything else, or for CUDA
    where there is none). The command receives the string."""
    return typer.Option(
        "--device",
        help=f"{DEVICES_TEXT}{': ' if what else ''}{what} (default {default_text}).",
        callback=_check_device,
        metavar="<cpu|cuda|cuda:N>",
    )


DebugOpt = Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)]
PresetOpt = Annotated[Optional[Preset], preset_option()]  # type: ignore[valid-type]
Fp16Opt = Annotated[bool, typer.Option("--fp16", help="Same as --precision fp16.")]
Int8Opt = Annotated[bool, typer.Option("--int8", help="Same as --precision int8.")]


def precision_from_flags(precision: Enum | str | None, fp16: bool = False, int8: bool = False) -> str | None:
    """The precision asked for by ``--precision`` or its aliases ``--fp16`` / ``--int8`` (None: none asked);
    a one-line error when they disagree."""
    given = {f"--precision {value_of(precision)}": value_of(precision)} if precision is not None else {}
    given |= {flag: p for flag, p, on in (("--fp16", "fp16", fp16), ("--int8", "int8", int8)) if on}
    if len(set(given.values())) > 1:
        raise PahsError(f"expected one precision, found {' and '.join(given)}; pick one")
    return next(iter(given.values()), None)


def library_version(module: str) -> str:
    """The version of an optional library without importing it (`--version` must stay fast)."""
    from importlib import metadata

    loaded = getattr(sys.modules.get(module), "__version__", None)
    if isinstance(loaded, str):
        return loaded
    try:
        if importlib.util.find_spec(module) is None:
            return "not installed"
    except (ImportError, ValueError):
        return "not installed"
    for dist in LIBRARIES.get(module, (module,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "version unknown"


def pahs_version() -> str:
    """This package's version: the installed distribution's, else the source checkout's pyproject.toml's."""
    from importlib import metadata

    try:
        return metadata.version("pahs")
    except metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    match = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.M) if pyproject.is_file() else None
    return f"{match[1]} (not installed)" if match else "unknown (not installed)"


def version_line(prog_name: str) -> str:
    """``pahs-run 0.1.0 (torch 2.4.0, onnxruntime 1.18.0, openvino not installed, tensorrt not installed, python
    3.11.7)``: what `--version` prints."""
    libraries = ", ".join(f"{name} {library_version(name)}" for name in LIBRARIES)
    return f"{prog_name} {pahs_version()} ({libraries}, python {platform.python_version()})"


def _show_version(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        typer.echo(version_line(ctx.find_root().info_name or "pahs"))
        raise typer.Exit()


def _version_parameter() -> Any:
    """A ``--version`` click parameter, made by Typer from a placeholder command (public API only)."""
    placeholder = typer.Typer(add_completion=False)

    @placeholder.command()
    def _placeholder(
        version: Annotated[
            bool,
            typer.Option("--version", help=VERSION_HELP, is_eager=True, expose_value=False, callback=_show_version),
        ] = False,
    ) -> None:
        pass  # pragma: no cover

    return typer.main.get_command(placeholder).params[0]


def _add_version(command: Any) -> None:
    """``--version`` on ``command`` and on each of its subcommands (unless one has its own)."""
    if not any("--version" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(_version_parameter())
    for sub in getattr(command, "commands", {}).values():
        _add_version(sub)


def _plain_help(command: Any) -> None:
    """Help as plain text on ``command`` and its subcommands: off a terminal (a file, ``| grep``, ``less``) Rich's
    boxes wrap every option into narrow columns that no one can grep. Click's formatter wraps at the terminal's
    width, or 80 columns when there is none; ours never breaks a word at a hyphen (``torch-cuda-fp16`` stays
    whole, so grep finds it)."""
    base = command.context_class

    class Formatter(base.formatter_class):  # type: ignore[name-defined,misc]
        def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
            first_col = min(max((len(first) for first, _ in rows), default=0), col_max) + col_spacing
            for first, second in rows:
                self.write(f"{'':>{self.current_indent}}{first}")
                if not second:
                    self.write("\n")
                    continue
                if len(first) <= first_col - col_spacing:
                    self.write(" " * (first_col - len(first)))
                else:  # a long option name (its choices): its own line, the text on the next
                    self.write("\n" + " " * (first_col + self.current_indent))
                width = max(self.width - first_col - self.current_indent, 20)
                lines = textwrap.wrap(" ".join(second.split()), width, break_on_hyphens=False)
                self.write(("\n" + " " * (first_col + self.current_indent)).join(lines) + "\n")

        def write_text(self, text: str) -> None:
            indent, width = " " * self.current_indent, max(self.width - self.current_indent, 20)
            paragraphs = [textwrap.wrap(" ".join(p.split()), width, break_on_hyphens=False) for p in text.split("\n\n")]
            self.write("\n".join("".join(f"{indent}{line}\n" for line in p) for p in paragraphs if p))

    class Context(base):  # type: ignore[valid-type,misc]
        formatter_class = Formatter

    def plain(cmd: Any) -> None:
        cmd.rich_markup_mode = None
        cmd.context_class = Context
        for sub in getattr(cmd, "commands", {}).values():
            plain(sub)

    plain(command)


def new_app(help_text: str) -> typer.Typer:
    """A Typer app with our conventions (no rich tracebacks: errors are one line unless --debug; completion
    scripts from --install-completion / --show-completion)."""
    return typer.Typer(
        help=help_text,
        add_completion=True,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def completion_var(prog_name: str) -> str:
    """The environment variable a completion script sets to ask ``prog_name`` for completions."""
    return f"_{prog_name.replace('-', '_').upper()}_COMPLETE"


def usage_error_line(prog_name: str, error: Exception) -> str:
    """A click usage error as one line: ``prog: error: <click's message>; see 'prog [command] --help'``."""
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    message = " ".join(message.replace(": Value error, ", ": ").split()).rstrip(".")
    if not hasattr(error, "ctx"):  # not a usage error (a file click could not open...)
        return f"{prog_name}: error: {message}"
    command = error.ctx.command_path if error.ctx is not None else prog_name
    return f"{prog_name}: error: {message}; see '{command or prog_name} --help'"


def _complete(command: Any, prog_name: str, args: list[str]) -> int:
    """Hand a completion request over to click's own main, which answers it and exits."""
    try:
        command.main(args, prog_name=prog_name, complete_var=completion_var(prog_name), standalone_mode=False)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    return 0


def entry_point(app: typer.Typer, prog_name: str) -> Main:
    """``main(argv=None) -> int`` for ``app``: runs in-process (``argv`` None: ``sys.argv[1:]``) and returns the
    exit status. Every command and subcommand gets ``--version``. A :class:`PahsError` prints
    ``prog: error: ...`` and gives 2 (the traceback with --debug); a usage error (unknown option, missing
    argument, bad value) prints ``prog: error: <click's message>; see 'prog --help'`` and gives click's status
    (2); an interrupt prints ``prog: interrupted (SIGINT)`` and gives 128 + the signal's number (130 for Ctrl-C;
    an exception carrying ``signum``, such as ``runtime.io.Interrupted``, names its signal: every command runs
    within :func:`~pahs_export.signals.termination_handlers`, so a termination signal stops it at its next safe
    point, as in `pahs-run`, rather than killing it with its outputs half-written); a disk error nobody
    turned into a PahsError (full, read-only, no permission) is one line too, and 2. With the completion
    variable set (``_PAHS_RUN_COMPLETE`` for pahs-run), it answers the completion request instead.

    The command runs through click's ``make_context``/``invoke`` rather than ``app(...)``: Typer's own main turns
    KeyboardInterrupt into a silent exit status 130, so the message could never print."""

    def main(argv: Sequence[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in args
        try:
            command = typer.main.get_command(app)
            _add_version(command)
            if not sys.stdout.isatty():
                _plain_help(command)
            if os.environ.get(completion_var(prog_name)):
                return _complete(command, prog_name, args)
            # One signal handling for every command: SIGINT, SIGTERM and SIGHUP set a flag that long work checks
            # at safe points (pahs_export.signals), which then ends in `interrupted (SIGTERM)` and 128 + signum.
            with termination_handlers(), command.make_context(prog_name, args) as ctx:
                status = command.invoke(ctx)
        except PahsError as e:
            if debug:
                raise
            print(f"{prog_name}: error: {e}", file=sys.stderr)
            return 2
        except typer.Exit as e:  # raise typer.Exit(n) in a command, --help and --version
            return e.exit_code
        except _CLICK_EXCEPTION as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # no arguments at all: the help, as it was
                e.show()
            else:
                print(usage_error_line(prog_name, e), file=sys.stderr)
            return e.exit_code
        except (KeyboardInterrupt, typer.Abort, EOFError) as e:
            signum = getattr(e, "signum", signal.SIGINT)
            if debug:
                traceback.print_exc()
            print(f"{prog_name}: interrupted ({signal_name(signum)})", file=sys.stderr)
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
