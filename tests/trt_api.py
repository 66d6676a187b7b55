"""TensorRT's real Python API surface, and every use our code makes of it, for tests/test_tensorrt_api.py.

TensorRT's libraries cannot be installed here, but two real artefacts of its API can:

- ``tensorrt-cu13-bindings`` 11.4: the pybind11 module ``tensorrt.so`` itself. It links against nine C entry
  points of libnvinfer/libnvonnxparser/libnvinfer_plugin (the rest of TensorRT is reached through C++ virtual
  calls), so we load it against three tiny stand-in libraries whose every function aborts the process if it is
  ever called. Importing the module only registers its classes; nothing of TensorRT runs. pybind11-stubgen then
  writes the module's classes, methods, properties, enum members and signatures as a .pyi file.
- ``tensorrt-stubs`` 10.13: type stubs of TensorRT 10.13, made the same way by their authors.

Both stub files are read with ``ast`` into :class:`Surface` (class -> members, with bases and signatures).
:func:`collect_uses` reads our source with ``ast`` and infers, per function, which variables hold the tensorrt
module, a TensorRT class, or an instance of one (from constructors, the stubs' return and property types, and
our own annotations), so that every ``builder.create_network(...)`` is checked as a member of ``Builder``, not
as a string somewhere in the module. A use inside ``if hasattr(X, "name"):`` is version-specific: it may be
missing from one version, not from both.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

BINDINGS = "tensorrt-cu13-bindings==11.4.0.106"
STUBS = "tensorrt-stubs==10.13.0.35.1"
ROOT = Path(__file__).resolve().parents[1]

# The C entry points tensorrt.so links against: every one aborts if called (nothing may run).
_STUB_C = r"""
#include <stdio.h>
#include <stdlib.h>
#define STUB(name) void *name(void) { fprintf(stderr, "tensorrt API-surface stand-in: %s called\n", #name); abort(); }
STUB(createInferBuilder_INTERNAL) STUB(createInferRefitter_INTERNAL) STUB(createInferRuntime_INTERNAL)
STUB(createNvOnnxParserRefitter_INTERNAL) STUB(createNvOnnxParser_INTERNAL) STUB(getBuilderPluginRegistry)
STUB(getNvOnnxParserVersion) STUB(getPluginRegistry) STUB(initLibNvInferPlugins)
"""
_LIBS = ("libnvinfer.so.11", "libnvinfer_plugin.so.11", "libnvonnxparser.so.11")
_STUBGEN = r"""
import ctypes, sys
folder, out = sys.argv[1], sys.argv[2]
for lib in {libs!r}:
    ctypes.CDLL(f"{{folder}}/{{lib}}", mode=ctypes.RTLD_GLOBAL)
sys.path.insert(0, folder)
import pybind11_stubgen
sys.argv = ["pybind11-stubgen", "tensorrt", "-o", out, "--ignore-all-errors"]
pybind11_stubgen.main()
"""


class Unavailable(Exception):
    """The API surface could not be prepared here (no network to PyPI, no C compiler...): the reason."""


def _run(cmd: list[str], what: str, timeout: int = 300) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise Unavailable(f"{what} failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")


def _sanitize(stub: Path) -> int:
    """Make a generated stub file parse: a parameter named ``in`` becomes ``in_``; a signature Python cannot
    express (a required parameter after defaults) becomes ``(*args, **kwargs)``. Returns the lines changed."""
    lines, changed = stub.read_text().splitlines(), 0
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("def "):
            continue
        fixed = re.sub(r"([(,] )in: ", r"\1in_: ", line)
        try:
            ast.parse(fixed.strip() + "\n    ...")
        except SyntaxError:
            fixed = re.sub(r"\((.*)\)( ->.*:)$", r"(*args: typing.Any, **kwargs: typing.Any)\2", fixed)
        if fixed != line:
            lines[i], changed = fixed, changed + 1
    stub.write_text("\n".join(lines) + "\n")
    return changed


def prepare(folder: Path) -> tuple[Path, Path]:
    """Fetch both wheels into ``folder`` and return (folder holding ``tensorrt.pyi`` generated from the 11.4
    bindings, folder holding the 10.13 stubs' ``tensorrt`` package), both usable as MYPYPATH."""
    v11, v10 = folder / "stubs-11.4", folder / "stubs-10.13"
    if (v11 / "tensorrt.pyi").is_file() and (v10 / "tensorrt" / "__init__.pyi").is_file():
        return v11, v10
    wheels = folder / "wheels"
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels)]
    _run([*pip, BINDINGS, STUBS], f"pip download {BINDINGS} {STUBS}")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise Unavailable("no C compiler (cc/gcc) to build the stand-in libraries tensorrt.so links against")
    build = folder / "bindings"
    with zipfile.ZipFile(next(wheels.glob("tensorrt_cu13_bindings-*.whl"))) as whl:
        whl.extractall(build)
    (build / "stub.c").write_text(_STUB_C)
    lib_dir = build / "tensorrt_bindings"  # beside tensorrt.so, where the stub-generator imports it from
    for lib in _LIBS:
        _run([cc, "-shared", "-fPIC", f"-Wl,-soname,{lib}", "-o", str(lib_dir / lib), str(build / "stub.c")], cc)
    _run([sys.executable, "-c", _STUBGEN.format(libs=_LIBS), str(lib_dir), str(v11)], "pybind11-stubgen tensorrt")
    # the package's Python part adds module-level names (e.g. __version__) to what the .so registers
    version = re.search(r'__version__ = "([^"]+)"', (lib_dir / "__init__.py").read_text())
    with (v11 / "tensorrt.pyi").open("a") as f:
        f.write(f"\n__version__: str = {version.group(1)!r}\n" if version else "")
    _sanitize(v11 / "tensorrt.pyi")
    with zipfile.ZipFile(next(wheels.glob("tensorrt_stubs-*.whl"))) as whl:
        whl.extractall(v10)
    _sanitize(v10 / "tensorrt_bindings" / "tensorrt.pyi")
    return v11, v10


# ----------------------------------------------------------------------------------------------------------------
# The surface of one version, read from its stub file.


@dataclass(frozen=True)
class Signature:
    """The parameters of one overload, ``self`` dropped."""

    params: tuple[str, ...]  # positional-or-keyword (and positional-only) names, in order
    positional_only: int  # how many of ``params`` are positional-only
    defaults: int  # how many trailing ``params`` have defaults
    varargs: bool
    kwonly: tuple[tuple[str, bool], ...]  # keyword-only (name, required)
    varkw: bool

    @classmethod
    def of(cls, args: ast.arguments, drop_self: bool) -> Signature:
        params = [a.arg for a in args.posonlyargs + args.args]
        posonly = len(args.posonlyargs)
        if drop_self and params:
            params, posonly = params[1:], max(0, posonly - 1)
        kwonly = tuple((a.arg, d is None) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True))
        defaults = min(len(args.defaults), len(params))
        return cls(tuple(params), posonly, defaults, args.vararg is not None, kwonly, args.kwarg is not None)

    def binds(self, npos: int, keywords: tuple[str, ...]) -> bool:
        """Whether a call with ``npos`` positional arguments and ``keywords`` fits (npos < 0: uncountable)."""
        if npos < 0:
            return True
        if npos > len(self.params) and not self.varargs:
            return False
        filled = set(self.params[:npos])
        by_keyword = set(self.params[self.positional_only :]) | {name for name, _ in self.kwonly}
        for k in keywords:
            if k in filled or (k not in by_keyword and not self.varkw):
                return False
            filled.add(k)
        required = set(self.params[: len(self.params) - self.defaults]) | {n for n, req in self.kwonly if req}
        return required <= filled


@dataclass
class Member:
    kind: str  # "method", "property", "value" (ClassVar, enum member, attribute), "class"
    signatures: list[Signature] = field(default_factory=list)  # methods: one per overload
    type: str | None = None  # properties and values: their annotation; methods: the first overload's return
    static: bool = False  # a staticmethod (called through the class without self)


@dataclass
class Surface:
    version: str
    module: dict[str, Member]  # module-level names (classes, functions, values)
    classes: dict[str, dict[str, Member]]  # qualified class name ("ILogger.Severity") -> its own members
    bases: dict[str, list[str]]  # qualified class name -> base class names

    def member(self, owner: str, name: str) -> Member | None:
        """``name`` on class ``owner`` or one of its bases (None if it has none)."""
        seen, todo = set(), [owner]
        while todo:
            cls = todo.pop(0)
            if cls in seen or cls not in self.classes:
                continue
            seen.add(cls)
            if name in self.classes[cls]:
                return self.classes[cls][name]
            todo += self.bases.get(cls, [])
        return None


def _annotation(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    text = ast.unparse(node)
    m = re.fullmatch(r"typing\.ClassVar\[(.+)\]", text)
    return m.group(1) if m else text


def _read_class(node: ast.ClassDef, prefix: str, surface: Surface) -> None:
    name = f"{prefix}{node.name}"
    members: dict[str, Member] = {}
    surface.classes[name] = members
    surface.bases[name] = [ast.unparse(b).split(".")[-1] for b in node.bases]
    for item in node.body:
        if isinstance(item, ast.ClassDef):
            members[item.name] = Member("class", type=f"{name}.{item.name}")
            _read_class(item, f"{name}.", surface)
        elif isinstance(item, ast.FunctionDef):
            decorators = {ast.unparse(d) for d in item.decorator_list}
            if "property" in decorators:
                members[item.name] = Member("property", type=_annotation(item.returns))
            elif any(d.endswith(".setter") for d in decorators):
                continue
            else:
                static = "staticmethod" in decorators
                m = members.setdefault(item.name, Member("method", type=_annotation(item.returns), static=static))
                m.signatures.append(Signature.of(item.args, drop_self=not static))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            members[item.target.id] = Member("value", type=_annotation(item.annotation))
        elif isinstance(item, ast.Assign):
            for t in item.targets:
                if isinstance(t, ast.Name):
                    members[t.id] = Member("value")


def read_surface(stub: Path, version: str) -> Surface:
    """Classes and module names of a stub file (a package's ``__init__.pyi`` follows ``from X import *``-style
    re-exports of the bindings module next to it)."""
    surface = Surface(version, {}, {}, {})
    tree = ast.parse(stub.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            _read_class(node, "", surface)
            surface.module[node.name] = Member("class", type=node.name)
        elif isinstance(node, ast.FunctionDef):
            surface.module[node.name] = Member("method", type=_annotation(node.returns))
            surface.module[node.name].signatures.append(Signature.of(node.args, drop_self=False))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            surface.module[node.target.id] = Member("value", type=_annotation(node.annotation))
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    surface.module[t.id] = Member("value")
        elif isinstance(node, ast.ImportFrom) and node.module == "tensorrt_bindings.tensorrt":
            for alias in node.names:
                surface.module.setdefault(alias.asname or alias.name, Member("value"))
    return surface


def load_surfaces(v11: Path, v10: Path) -> list[Surface]:
    s11 = read_surface(v11 / "tensorrt.pyi", "11.4")
    s10 = read_surface(v10 / "tensorrt_bindings" / "tensorrt.pyi", "10.13")
    package = read_surface(v10 / "tensorrt" / "__init__.pyi", "10.13")  # adds __version__ and the re-exports
    for name, member in package.module.items():
        s10.module.setdefault(name, member)
    return [s11, s10]


# ----------------------------------------------------------------------------------------------------------------
# Our uses of the API.

MODULE = ("module",)


@dataclass(frozen=True)
class Use:
    file: str
    line: int
    owner: tuple  # MODULE, ("class", name) for an instance, ("type", name) for the class object itself
    name: str
    guarded: bool  # inside `if hasattr(<owner>, "<name>")`
    call: tuple[int, tuple[str, ...]] | None = None  # (positional args, keyword names) when called


class _Collector(ast.NodeVisitor):
    """Infers types of names within each function (source order, flow-insensitive) and records uses."""

    def __init__(self, file: str, surface: Surface) -> None:
        self.file, self.surface = file, surface
        self.env: dict[str, tuple] = {}
        self.self_attrs: dict[str, tuple] = {}  # self.x types from annotations anywhere in the class
        self.local_returns: dict[str, tuple | None] = {}  # our own functions' annotated return types
        self.guards: list[tuple[tuple, str]] = []
        self.uses: list[Use] = []

    # -- types ------------------------------------------------------------------------------------------------
    def _named(self, text: str | None) -> tuple | None:
        """A type from a stub annotation or one of ours written with the module alias (``trt.ICudaEngine``)."""
        if not text:
            return None
        text = text.strip("'\"")
        m = re.fullmatch(r"(?:dict|typing\.Dict)\[[^,]+,\s*(.+)\]", text)
        if m:
            inner = self._named(m.group(1))
            return ("dict", inner) if inner else None
        m = re.fullmatch(r"(.+?)\s*\|\s*None", text)
        if m:
            return self._named(m.group(1))
        name = text.split(".", 1)[1] if "." in text and text.split(".")[0] in self._module_aliases() else text
        name = name.removeprefix("tensorrt.")
        if name in self.surface.classes:
            return ("class", name)
        return None

    def _module_aliases(self) -> set[str]:
        return {k for k, v in self.env.items() if v == MODULE} | {"tensorrt", "trt"}

    def type_of(self, node: ast.expr) -> tuple | None:
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return self.self_attrs.get(node.attr)
            base = self.type_of(node.value)
            if base == MODULE:
                member = self.surface.module.get(node.attr)
                return ("type", node.attr) if member and member.kind == "class" else None
            if base and base[0] in ("class", "type"):
                member = self.surface.member(base[1], node.attr)
                if member is None:
                    return None
                if member.kind == "class":
                    return ("type", member.type)
                if member.kind in ("property", "value"):
                    return self._named(member.type)
            return None
        if isinstance(node, ast.Call):
            func = self.type_of(node.func)
            if func and func[0] == "type":
                return ("class", func[1])
            if isinstance(node.func, ast.Attribute):
                base = self.type_of(node.func.value)
                if base and base[0] == "dict" and node.func.attr == "get":
                    return base[1]
                if base and base[0] in ("class", "type"):
                    member = self.surface.member(base[1], node.func.attr)
                    return self._named(member.type) if member and member.kind == "method" else None
            if isinstance(node.func, ast.Name):
                return self.local_returns.get(node.func.id)
            if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
                if node.func.value.id == "self":
                    return self.local_returns.get(node.func.attr)
            return None
        if isinstance(node, ast.Subscript):
            base = self.type_of(node.value)
            return base[1] if base and base[0] == "dict" else None
        return None

    # -- statements -------------------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "tensorrt":
                self.env[alias.asname or "tensorrt"] = MODULE

    def visit_If(self, node: ast.If) -> None:
        guard = None
        test = node.test
        if isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "hasattr":
            owner = self.type_of(test.args[0])
            name = test.args[1]
            if owner and isinstance(name, ast.Constant):
                guard = (owner, name.value)
                self.uses.append(Use(self.file, node.lineno, owner, name.value, True))
        else:
            self.visit(test)
        if guard:
            self.guards.append(guard)
        for stmt in node.body:
            self.visit(stmt)
        if guard:
            self.guards.pop()
        for stmt in node.orelse:
            self.visit(stmt)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        outer = dict(self.env)
        for arg in node.args.args + node.args.kwonlyargs:
            t = self._named(_annotation(arg.annotation))
            if t:
                self.env[arg.arg] = t
        for stmt in node.body:
            self.visit(stmt)
        self.env = outer

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        t = self.type_of(node.value)
        for target in node.targets:
            self._bind(target, t)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        t = self._named(_annotation(node.annotation)) or (self.type_of(node.value) if node.value else None)
        self._bind(node.target, t)

    def _bind(self, target: ast.expr, t: tuple | None) -> None:
        if isinstance(target, ast.Name) and t is not None:
            self.env[target.id] = t
        elif isinstance(target, ast.Attribute):
            if isinstance(target.value, ast.Name) and target.value.id == "self":
                if t is not None:
                    self.self_attrs.setdefault(target.attr, t)
            else:
                self.visit(target)  # assigning a property of a TensorRT object is a use of it
        elif isinstance(target, ast.Subscript):
            self.visit(target.value)

    # -- expressions ------------------------------------------------------------------------------------------
    def _record(self, node: ast.Attribute, call: tuple[int, tuple[str, ...]] | None = None) -> None:
        owner = self.type_of(node.value)
        if owner and owner[0] in ("module", "class", "type"):
            guarded = any(g == (owner, node.attr) for g in self.guards)
            self.uses.append(Use(self.file, node.lineno, owner, node.attr, guarded, call))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._record(node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute):
            kw = tuple(k.arg for k in node.keywords if k.arg)
            npos = len(node.args) if not any(isinstance(a, ast.Starred) for a in node.args) else -1
            self._record(node.func, (npos, kw))
            self.visit(node.func.value)
        else:
            self.visit(node.func)
        for arg in node.args:
            self.visit(arg)
        for k in node.keywords:
            self.visit(k.value)


def collect_uses(source: str, file: str, surface: Surface) -> list[Use]:
    """Every attribute our ``source`` reaches on the tensorrt module, its classes and their instances."""
    tree = ast.parse(source, file)
    collector = _Collector(file, surface)
    for node in ast.walk(tree):  # our own functions' return types and self.x annotations, before the pass
        if isinstance(node, ast.FunctionDef):
            collector.local_returns[node.name] = collector._named(_annotation(node.returns))
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Attribute):
            t = collector._named(_annotation(node.annotation))
            if t and isinstance(node.target.value, ast.Name) and node.target.value.id == "self":
                collector.self_attrs[node.target.attr] = t
    collector.visit(tree)
    return collector.uses


def problems(uses: list[Use], surfaces: list[Surface]) -> list[str]:
    """One line per use that a version lacks (outside a hasattr guard) or that a call's arguments do not fit."""
    out = []
    for use in uses:
        where = f"{use.file}:{use.line}"
        found = []
        for s in surfaces:
            owner_name = "tensorrt" if use.owner == MODULE else use.owner[1]
            member = s.module.get(use.name) if use.owner == MODULE else s.member(use.owner[1], use.name)
            found.append(member is not None)
            if member is None and not use.guarded:
                out.append(f"{where}: TensorRT {s.version} has no {owner_name}.{use.name}")
            elif member is not None and use.call:
                npos, kw = use.call
                signatures = member.signatures
                if member.kind == "class":  # a constructor call
                    init = s.member(member.type or use.name, "__init__")
                    signatures = init.signatures if init else []
                elif use.owner[0] == "type" and not member.static and npos > 0:
                    npos -= 1  # Class.method(instance, ...): the instance is self
                if signatures and not any(sig.binds(npos, kw) for sig in signatures):
                    out.append(
                        f"{where}: TensorRT {s.version}'s {owner_name}.{use.name} takes no call with {npos} "
                        f"positional argument(s){' and ' + ', '.join(kw) if kw else ''}"
                    )
        if use.guarded and not any(found):
            out.append(f"{where}: guarded {use.name} exists in no TensorRT version checked")
    return out


def our_tensorrt_files() -> list[Path]:
    """The project's modules that import tensorrt."""
    files = []
    for pkg in ("pahs", "pahs_export", "runtime", "calibration"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if re.search(r"^\s*import tensorrt\b", path.read_text(), re.M):
                files.append(path)
    return files
