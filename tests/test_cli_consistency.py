"""Every command spells every option the same way: walked over every console script and subcommand, in-process
through each module's ``main(argv) -> int`` (pahs.cli.common's conventions).

- ``--version`` works everywhere (exit 0, one line naming the program and the libraries that matter);
- a usage error (unknown option, missing argument, bad value) is one line on stderr and exit status 2;
- options with a fixed set of values list them in ``-h`` and are completed by the shell;
- ``--output/-o``, ``--preset/-p``, ``--device``, ``--quiet/-q`` appear where they should, and a short flag
  means the same long option in every command.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from pahs.bench_variants import VARIANTS
from pahs.cli.common import DEVICES_TEXT, completion_var, version_line
from pahs_export.contract import PRECISIONS
from pahs_export.precision import CALIBRATION_METHODS, INT8_TARGETS
from pahs_export.presets import PRESETS
from runtime.engines import OPENERS
from runtime.io import OUTPUT_CODECS, OUTPUT_FORMATS
from training.datasets import LAYOUTS
from training.shake import CONTENT_LAYOUTS

ROOT = Path(__file__).resolve().parents[1]
# console script -> (module, its Typer app, its main(argv) -> int); pyproject's [project.scripts] must match.
PROGRAMS = {
    "pahs-export": ("pahs.cli.export", "app", "main"),
    "pahs-run": ("pahs.cli.run", "app", "main"),
    "pahs-bench": ("pahs.cli.bench", "app", "main"),
    "pahs-train": ("pahs.cli.train", "train_app", "train_main"),
    "pahs-eval": ("pahs.cli.train", "eval_app", "eval_main"),
}


def _module(prog: str):
    return importlib.import_module(PROGRAMS[prog][0])


def main_of(prog: str):
    return getattr(_module(prog), PROGRAMS[prog][2])


def click_command(prog: str, sub: tuple[str, ...] = ()):
    """The click command of ``prog`` (or of its subcommand ``sub``), as Typer builds it."""
    command = typer.main.get_command(getattr(_module(prog), PROGRAMS[prog][1]))
    for name in sub:
        command = command.commands[name]
    return command


def _walk() -> list[tuple[str, tuple[str, ...]]]:
    """(program, subcommand path) for every program and each of its subcommands."""
    found = []
    for prog in PROGRAMS:
        found.append((prog, ()))
        found += [(prog, (name,)) for name in getattr(click_command(prog), "commands", {})]
    return found


COMMANDS = _walk()
IDS = [" ".join([prog, *sub]) for prog, sub in COMMANDS]
LEAVES = [(prog, sub) for prog, sub in COMMANDS if not hasattr(click_command(prog, sub), "commands")]
LEAF_IDS = [" ".join([prog, *sub]) for prog, sub in LEAVES]

# The options each command must have (every spelling), and the choices its choice options list.
OPTIONS = {
    "pahs-export info": ["--preset", "-p"],
    "pahs-export onnx": ["--preset", "-p", "--output", "-o", "--quiet", "-q", "--precision", "--fp16", "--int8"],
    "pahs-export verify": ["--checkpoint", "-c", "--frames", "-n"],
    "pahs-export trt": ["--preset", "-p", "--output", "-o", "--precision", "--fp16", "--int8", "--verify"],
    "pahs-run": ["--output", "-o", "--device", "--quiet", "-q", "--engine", "-e", "--backend", "-b", "--precision"],
    # repeatable options: the singular spelling every other command uses, and the plural one
    "pahs-bench": [
        *("--preset", "--presets", "-p", "--backend", "--backends", "-b"),
        *("--device", "--quiet", "-q", "--engine", "-e"),
    ],
    "pahs-train": ["--output", "-o", "--preset", "-p", "--device", "--quiet", "-q"],
    "pahs-eval": ["--preset", "-p", "--device", "--quiet", "-q", "--checkpoint", "-c", "--frames", "-n"],
}
LAYOUT_CHOICES = (*LAYOUTS, "x4k", *CONTENT_LAYOUTS)
CHOICES = {
    "pahs-export info": {"--preset": PRESETS},
    "pahs-export onnx": {
        "--preset": PRESETS,
        "--precision": PRECISIONS,
        "--calibration-method": CALIBRATION_METHODS,
        "--int8-target": INT8_TARGETS,
    },
    "pahs-export trt": {"--preset": PRESETS, "--precision": PRECISIONS},
    "pahs-run": {"--backend": OPENERS, "--precision": PRECISIONS, "--format": OUTPUT_FORMATS, "--codec": OUTPUT_CODECS},
    "pahs-bench": {"--preset": PRESETS, "--backend": VARIANTS},
    "pahs-train": {"--preset": PRESETS, "--layout": LAYOUT_CHOICES},
    "pahs-eval": {"--preset": PRESETS, "--layout": LAYOUT_CHOICES},
}


def call(capsys, prog: str, *args: str) -> tuple[int, str, str]:
    status = main_of(prog)(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


def _names(command) -> dict[str, list[str]]:
    """Each option of ``command`` by its first long name: all its spellings."""
    names = {}
    for p in command.params:
        spellings = [*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ())]
        long = [s for s in spellings if s.startswith("--")]
        if long:
            names[long[0]] = spellings
    return names


@pytest.fixture
def wide_help(monkeypatch):
    """Help on one line per option: no wrapping to hide a choice."""
    monkeypatch.setenv("COLUMNS", "1000")
    rich_utils = sys.modules.get("typer.rich_utils")
    if rich_utils is not None:
        monkeypatch.setattr(rich_utils, "MAX_WIDTH", 1000, raising=False)


def test_every_console_script_is_walked():
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {prog: f"{m}:{main}" for prog, (m, _, main) in PROGRAMS.items()} == scripts
    assert ("pahs-export", ("trt",)) in COMMANDS and len(LEAVES) == 8


@pytest.mark.parametrize(("prog", "sub"), COMMANDS, ids=IDS)
def test_version_is_one_line(capsys, prog, sub):
    status, out, err = call(capsys, prog, *sub, "--version")
    assert status == 0, err
    assert err == "" and len(out.splitlines()) == 1, out
    assert re.match(rf"{prog} \S+ \(torch \S+", out)
    for library in ("onnxruntime", "openvino", "tensorrt"):
        assert f"{library} " in out
    assert "--version" in call(capsys, prog, *sub, "-h")[1]  # it shows in --help


def test_version_imports_no_runtime():
    """`--version` stays fast: it reads the libraries' versions without importing them."""
    before = set(sys.modules)
    line = version_line("pahs-x")
    heavy = {m.split(".")[0] for m in set(sys.modules) - before} & {"onnxruntime", "openvino", "tensorrt"}
    assert not heavy and line.startswith("pahs-x ")


@pytest.mark.parametrize(("prog", "sub"), COMMANDS, ids=IDS)
def test_unknown_option_is_one_line(capsys, prog, sub):
    status, out, err = call(capsys, prog, *sub, "--no-such-option")
    assert status == 2
    path = " ".join([prog, *sub])
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"{prog}: error: No such option: --no-such-option") and err.endswith(
        f"; see '{path} --help'\n"
    )
    assert "Usage" not in out + err


@pytest.mark.parametrize(
    ("prog", "args", "fragment"),
    [
        ("pahs-export", ["verify"], "Missing argument 'artifact'; see 'pahs-export verify --help'"),
        ("pahs-export", ["nope"], "No such command 'nope'; see 'pahs-export --help'"),
        ("pahs-bench", ["--frames", "many"], "Invalid value for '--frames' / '-n':"),
        ("pahs-export", ["onnx", "--precision", "fp8"], "'fp8' is not one of 'fp32', 'fp16', 'int8'"),
        ("pahs-train", ["-o"], "Option '-o' requires an argument"),
        ("pahs-run", ["--chunk", "x", "in.mp4"], "Invalid value for '--chunk'"),
    ],
)
def test_usage_errors_are_one_line(capsys, prog, args, fragment):
    status, out, err = call(capsys, prog, *args)
    assert status == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"{prog}: error: ") and fragment.lower() in err.lower(), err
    assert "Usage" not in out + err and "Traceback" not in err


def test_no_arguments_still_show_the_help(capsys):
    _, out, err = call(capsys, "pahs-export")
    assert "Usage" in out + err and "pahs-export: error" not in err


@pytest.mark.parametrize("name", list(OPTIONS), ids=list(OPTIONS))
def test_options_are_spelled_the_same_everywhere(name):
    prog, *sub = name.split()
    names = _names(click_command(prog, tuple(sub)))
    spellings = {s for v in names.values() for s in v}
    assert set(OPTIONS[name]) <= spellings, sorted(set(OPTIONS[name]) - spellings)


def test_a_short_flag_means_one_option():
    """-o is --output, -p --preset(s), -c --checkpoint... in every command that has it."""
    meaning: dict[str, set[str]] = {}
    for prog, sub in LEAVES:
        for long, spellings in _names(click_command(prog, sub)).items():
            for short in (s for s in spellings if not s.startswith("--")):
                meaning.setdefault(short, set()).add(long.removesuffix("s"))
    assert {short: longs for short, longs in meaning.items() if len(longs) > 1} == {}
    assert meaning["-o"] == {"--output"} and meaning["-p"] == {"--preset"} and meaning["-q"] == {"--quiet"}


@pytest.mark.parametrize(
    ("prog", "sub"),
    LEAVES,
    ids=LEAF_IDS,
)
def test_preset_is_the_model_preset(prog, sub):
    """`--preset` names a model preset wherever it appears (pahs-run's encoder preset is --encoder-preset)."""
    names = _names(click_command(prog, sub))
    if "--preset" in names:
        assert "-p" in names["--preset"]


@pytest.mark.parametrize(
    ("name", "option"),
    [(name, option) for name, options in CHOICES.items() for option in options],
)
def test_choices_are_checked_by_click(capsys, name, option):
    """A value outside the choices is a usage error (one line listing them), before anything runs."""
    prog, *sub = name.split()
    status, _, err = call(capsys, prog, *sub, option, "no-such-choice")
    assert status == 2 and len(err.splitlines()) == 1, err
    assert "'no-such-choice' is not one of" in err and all(f"'{v}'" in err for v in CHOICES[name][option]), err


@pytest.mark.parametrize("name", list(CHOICES), ids=list(CHOICES))
def test_help_lists_the_choices(capsys, wide_help, name):
    prog, *sub = name.split()
    status, out, _ = call(capsys, prog, *sub, "-h")
    assert status == 0
    lines = out.splitlines()
    for option, values in CHOICES[name].items():
        # plain help (not a terminal): an option's row is indented two spaces, its wrapped help further
        row = next((i for i, line in enumerate(lines) if re.match(rf"^  (-\w, )?{option}(?![\w-])", line)), None)
        assert row is not None, f"{option} not in the help of {name}"
        text = lines[row]  # the option's row and its continuation lines (wrapped help)
        for line in lines[row + 1 :]:
            if not line.startswith("   "):
                break
            text += " " + line
        missing = [v for v in values if not re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", text)]
        assert not missing, f"{name} -h: {option} does not list {missing}"


@pytest.mark.parametrize(
    "name",
    ["pahs-run", "pahs-bench", "pahs-train", "pahs-eval"],
    ids=["pahs-run", "pahs-bench", "pahs-train", "pahs-eval"],
)
def test_device_is_checked_in_one_line(capsys, wide_help, name):
    """--device: cpu, cuda or cuda:N, said in the help and checked as it is parsed, before anything runs."""
    help_text = call(capsys, name, "-h")[1]
    device_row = next(line for line in help_text.splitlines() if "--device" in line)
    assert DEVICES_TEXT in device_row, device_row
    status, _, err = call(capsys, name, "--device", "gpu")
    assert status == 2
    assert err == f"{name}: error: expected --device cpu, cuda or cuda:N, found 'gpu'; pass one of them\n", err


@pytest.mark.parametrize(
    ("prog", "words", "expected"),
    [
        ("pahs-export", ["onnx", "--precision", ""], list(PRECISIONS)),
        ("pahs-export", ["trt", "-p", "pahs-"], [p for p in PRESETS if p.startswith("pahs-")]),
        ("pahs-export", [""], ["info", "onnx", "verify", "trt"]),
        ("pahs-bench", ["-b", "openvino"], [v for v in VARIANTS if v.startswith("openvino")]),
        ("pahs-train", ["--layout", ""], list(LAYOUT_CHOICES)),
        ("pahs-run", ["--backend", ""], list(OPENERS)),
    ],
)
def test_shell_completion_offers_the_choices(capsys, monkeypatch, prog, words, expected):
    """What bash's completion function asks (`_PAHS_EXPORT_COMPLETE=complete_bash`): the candidates."""
    monkeypatch.setenv(completion_var(prog), "complete_bash")
    monkeypatch.setenv("COMP_WORDS", " ".join([prog, *words]))
    monkeypatch.setenv("COMP_CWORD", str(len(words)))
    status, out, err = call(capsys, prog)
    assert status == 0, err
    assert out.split() == expected


def test_completion_script(capsys, monkeypatch):
    monkeypatch.setenv(completion_var("pahs-bench"), "source_bash")
    status, out, _ = call(capsys, "pahs-bench")
    assert status == 0 and "_PAHS_BENCH_COMPLETE=complete_bash" in out and "complete " in out


def test_trt_verify_needs_a_positive_count(capsys):
    for count in ("0", "-2"):
        status, _, err = call(capsys, "pahs-export", "trt", "--fp16", "--verify", count)
        assert status == 2
        assert err == (
            f"pahs-export: error: expected --verify N with N at least 1 frame, found {count}; give a positive "
            "count, or drop --verify to skip the check\n"
        )


@pytest.mark.parametrize(
    ("flags", "found"),
    [
        (["--fp16", "--int8"], "--fp16 and --int8"),
        (["--precision", "fp32", "--fp16"], "--precision fp32 and --fp16"),
        (["--int8", "--precision", "fp16"], "--precision fp16 and --int8"),
    ],
)
@pytest.mark.parametrize("command", ["trt", "onnx"])
def test_precision_aliases_must_agree(capsys, command, flags, found):
    status, _, err = call(capsys, "pahs-export", command, *flags)
    assert status == 2
    assert err == f"pahs-export: error: expected one precision, found {found}; pick one\n"


def test_eval_quiet_and_device(capsys, tmp_path):
    """pahs-eval: progress lines on stderr unless --quiet; --device picks where it restores."""
    args = ["--sequences", "1", "--frames", "2", "--size", "32x32", "--device", "cpu"]
    status, out, err = call(capsys, "pahs-eval", *args)
    assert status == 0, err
    assert err.startswith("pahs-eval: scoring synthetic-") and "overall" in out
    status, out, err = call(capsys, "pahs-eval", *args, "-q")
    assert status == 0 and err == "" and "overall" in out


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef):
            command = any(".command" in ast.unparse(d) for d in node.decorator_list)
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            params = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
            params = [p for p in params if p not in ("self", "cls")]
            yield node, command, node.end_lineno - first + 1, len(params), node.end_lineno - node.body[0].lineno + 1


@pytest.mark.parametrize("path", sorted((ROOT / "pahs" / "cli").glob("*.py")), ids=lambda p: p.name)
def test_command_line_functions_stay_small(path):
    """No function of a command-line module is over 80 lines; a command declares one parameter per option and
    only builds its request and hands it on (a body of at most 20 lines); any other takes at most 10 parameters."""
    problems = []
    for node, command, lines, params, body in _functions(path):
        where = f"{path.name}:{node.lineno} {node.name}"
        if lines > 80:
            problems.append(f"{where}: {lines} lines")
        if command and body > 20:
            problems.append(f"{where}: a command of {body} lines after its signature")
        if not command and params > 10:
            problems.append(f"{where}: {params} parameters")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("prog", "sub"), LEAVES, ids=LEAF_IDS)
def test_help_off_a_terminal_is_plain_text(prog, sub):
    """`prog --help | grep ...`, or help in a log: plain text at most 80 columns wide, one option per line start,
    no Rich box. The real console script in a subprocess, its stdout a pipe."""
    module, _, main = PROGRAMS[prog]
    code = f"import sys; from {module} import {main}; sys.argv[0] = {prog!r}; sys.exit({main}())"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERM")}
    result = subprocess.run(
        [sys.executable, "-c", code, *sub, "--help"], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not set("│╭╰─") & set(result.stdout), result.stdout
    text = [line for line in lines if not line.lstrip().startswith("-")]  # an option's spellings stay on one line
    assert max(len(line) for line in text) <= 80, max(text, key=len)
    assert not [line for line in lines if re.search(r"\w-$", line)], "a word broken at a hyphen: grep misses it"
    for long in _names(click_command(prog, sub)):
        assert any(re.match(rf"^\s+(-\w, )?{long}[ ,/=\n]", line + "\n") for line in lines), (long, result.stdout)


def test_readme_says_what_verify_writes(capsys, wide_help):
    """`--help` says `--verify` stops after the check unless -o or --compare is given; every example of
    `pahs-run --verify` without -o or --compare (README, docs/USAGE.md) says that it writes no video."""
    help_text = " ".join(call(capsys, "pahs-run", "-h")[1].split())
    assert "then stop (unless -o or --compare is given)" in help_text
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "USAGE.md").read_text()  # where examples live
    examples = [line for line in docs.splitlines() if re.match(r"^pahs-run .*--verify", line)]
    bare = [line for line in examples if not re.search(r"\s(-o|--output|--compare)\s", line.split("#")[0] + " ")]
    assert bare, "the README or docs/USAGE.md shows pahs-run --verify somewhere"
    for line in bare:
        comment = line.partition("#")[2]
        assert "no video" in comment and "-o" in comment and "--compare" in comment, line
