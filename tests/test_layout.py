"""The layout, checked over the import graph: a stage imports only the shared layers.

Every first-party module (`flows.fingerprints.PACKAGES`) is parsed with `ast`; none of their
imports runs. Stage `X` of any pipeline spec lives in the package `stages/X/` (a keyword takes a
trailing underscore: `stages/import_/`), whose `stage.py` holds its config and its step or run
function; everything else directly under `stages/` (and `schemas/`) is a shared layer. A stage
package imports no other stage package, a shared layer imports none, no first-party import hides
inside a function (but the lazy ones listed in `LAZY`, each with its reason), and no two modules
import each other, directly or around a loop (an unlisted import inside a function included).
"""

from __future__ import annotations

import ast
import importlib
import keyword
from dataclasses import dataclass
from pathlib import Path

from flows.evaluate import EVALUATION
from flows.fingerprints import PACKAGES
from flows.pipeline import PIPELINE, RELABEL

ROOT = Path(__file__).resolve().parents[1]
SPECS = {"PIPELINE": PIPELINE, "RELABEL": RELABEL, "EVALUATION": EVALUATION}
TRAIN = "stages.train"  # the improve flow's step: a stage outside the specs

CLI = "a command imports what it runs: `thoughtmill --help` and a bad recipe answer without Prefect or torch"
BACKEND = "one engine backend per file, imported when an engine of its kind is built (`build_engine`)"
# First-party imports inside functions that dodge no loop: (importer, imported) -> why it waits.
LAZY = {
    **{
        ("flows.cli", m): CLI
        for m in (
            "flows.bench.cost", "flows.bench.generate", "flows.bench.import_bench", "flows.bench.label",
            "flows.bench.loop", "flows.bench.prune", "flows.bench.publish", "flows.bench.reliability",
            "flows.evaluate", "flows.improve", "flows.pipeline", "flows.plan", "flows.recipe",
            "stages.problems.stage", "stages.report.stage", "stages.train.stage",
        )
    },
    **{("flows.run_cli", m): CLI for m in ("flows.curate", "flows.pipeline", "flows.recipe")},
    **{
        ("flows.engine_cli", m): CLI
        for m in ("flows.pipeline", "flows.recipe", "infra.tiny_reasoner.evaluate", "stages.engine",
                  "stages.engine.pool")
    },
    **{
        ("stages.engine", f"stages.engine.{m}"): BACKEND
        for m in ("openai_http", "transformers_prm", "vllm_offline", "vllm_pooling")
    },
    ("stages.prune", "stages.prune.think"): "think@n loads torch and transformers; the other strategies need neither",
}  # fmt: skip


@dataclass(frozen=True)
class Import:
    importer: str  # module name
    imported: str  # the first-party module it names (a package's `__init__` under the package's name)
    where: str  # file:line
    in_function: bool
    type_checking: bool  # under `if TYPE_CHECKING:`, never run


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Module name -> source file, for every module of `packages` under `root`."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module `name` names: itself, else its longest prefix that is a module (an attribute)."""
    parts = name.split(".")
    return next((m for i in range(len(parts), 0, -1) if (m := ".".join(parts[:i])) in modules), None)


class _Visitor(ast.NodeVisitor):
    def __init__(self, module: str, path: Path, root: Path, modules: dict[str, Path]) -> None:
        self.module, self.file, self.modules = module, path.relative_to(root).as_posix(), modules
        self.package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        self.depth, self.type_checking, self.found = 0, False, []

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        guard = ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        before, self.type_checking = self.type_checking, self.type_checking or guard
        for child in node.body:
            self.visit(child)
        self.type_checking = before
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            self._add(f"{base}.{alias.name}" if base else alias.name, node)

    def _add(self, name: str, node: ast.stmt) -> None:
        if (target := _resolve(name, self.modules)) is not None and target != self.module:
            where = f"{self.file}:{node.lineno}"
            self.found.append(Import(self.module, target, where, self.depth > 0, self.type_checking))


def import_graph(root: Path, packages: tuple[str, ...]) -> list[Import]:
    """Every import of a first-party module by a first-party module, parsed, never run."""
    modules, found = module_files(root, packages), []
    for module, path in modules.items():
        visitor = _Visitor(module, path, root, modules)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        found += visitor.found
    return found


def unit(module: str) -> str | None:
    """The stage package or shared layer `module` belongs to: `stages.<name>`, or `schemas`."""
    parts = module.split(".")
    if parts[0] == "schemas":
        return "schemas"
    return ".".join(parts[:2]) if parts[0] == "stages" and len(parts) > 1 else None


def package_name(stage: str) -> str:
    return f"{stage}_" if keyword.iskeyword(stage) else stage


def stage_packages() -> set[str]:
    """The stage packages the pipeline specs run (where their step or run function is), and train."""
    found = {unit((s.step or s.run).__module__) for spec in SPECS.values() for s in spec.stages}
    return found | {TRAIN}


def crossings(graph: list[Import], stage_units: set[str], by_stages: bool) -> list[str]:
    """Imports of a stage package by another stage package (`by_stages`), or by a shared layer."""
    out = []
    for i in graph:
        source, target = unit(i.importer), unit(i.imported)
        if source is not None and target in stage_units and target != source and (source in stage_units) == by_stages:
            out.append(f"{i.where}: {source} imports {i.imported} (stage {target})")
    return sorted(set(out))


def lazy_imports(graph: list[Import], allowed: dict[tuple[str, str], str]) -> list[str]:
    """First-party imports inside a function that `allowed` does not list, and listed ones that
    no longer exist (the list says exactly which imports wait, and why)."""
    lazy = {(i.importer, i.imported): i for i in graph if i.in_function}
    out = [
        f"{i.where}: {i.importer} imports {i.imported} inside a function" for k, i in lazy.items() if k not in allowed
    ]
    out += [f"LAZY lists {a} -> {b}, which no function imports" for a, b in allowed if (a, b) not in lazy]
    return sorted(out)


def cycles(graph: list[Import], allowed: dict[tuple[str, str], str]) -> list[list[str]]:
    """The import loops: each strongly connected set of two or more modules (Tarjan's algorithm),
    sorted. An import inside a function counts unless `allowed` lists it: one that dodges a loop is
    the loop it dodges."""
    edges: dict[str, set[str]] = {}
    for i in graph:
        if not i.type_checking and (not i.in_function or (i.importer, i.imported) not in allowed):
            edges.setdefault(i.importer, set()).add(i.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while (w := stack.pop()) != v:
                scc.append(w)
            if scc:
                found.append(sorted([v, *scc]))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def misplaced() -> list[str]:
    """Stages whose step or run function, or config, is not in `stages/<name>/stage.py`."""
    out = []
    runs = [
        (f"{name}.{s.name}", s.name, s.config, s.step or s.run) for name, spec in SPECS.items() for s in spec.stages
    ]
    try:
        train = importlib.import_module(f"{TRAIN}.stage")
        runs.append(("improve.train", "train", train.TrainConfig, train.train))
    except ModuleNotFoundError:
        out.append(f"improve.train: no {TRAIN}.stage")
    for label, name, config, run in runs:
        home = f"stages.{package_name(name)}.stage"
        for what in (config, run):
            if what.__module__ != home:
                out.append(f"{label}: {what.__name__} is in {what.__module__}, not {home}")
    return sorted(set(out))


GRAPH = import_graph(ROOT, PACKAGES)


def test_a_stage_imports_no_other_stage():
    found = crossings(GRAPH, stage_packages(), by_stages=True)
    assert not found, "stage packages import other stages:\n" + "\n".join(found)


def test_shared_layers_import_no_stage():
    found = crossings(GRAPH, stage_packages(), by_stages=False)
    assert not found, "shared layers import stages:\n" + "\n".join(found)


def test_no_first_party_import_inside_a_function_but_the_listed_lazy_ones():
    found = lazy_imports(GRAPH, LAZY)
    assert not found, "imports inside functions (move them to the top, or list them in LAZY with why):\n" + "\n".join(
        found
    )


def test_no_import_cycle():
    found = cycles(GRAPH, LAZY)
    assert not found, "import loops:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_every_stage_lives_in_its_package():
    found = misplaced()
    assert not found, "stages outside stages/<name>/stage.py:\n" + "\n".join(found)


def test_the_checks_catch_a_sibling_import_a_hidden_loop_and_a_cycle(tmp_path):
    files = {
        "stages/__init__.py": "",
        "stages/alpha/__init__.py": "",
        "stages/alpha/stage.py": "from stages.beta import stage\nfrom stages.common import helper\n",
        "stages/beta/__init__.py": "",
        "stages/beta/stage.py": "def run():\n    from stages.alpha.stage import x\n",
        "stages/common.py": "from stages import loop\n",
        "stages/loop.py": "from stages.common import helper\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, ("stages",))
    stage_units = {"stages.alpha", "stages.beta", "stages.loop"}
    assert crossings(graph, stage_units, by_stages=True) == [
        "stages/alpha/stage.py:1: stages.alpha imports stages.beta.stage (stage stages.beta)",
        "stages/beta/stage.py:2: stages.beta imports stages.alpha.stage (stage stages.alpha)",
    ]
    assert crossings(graph, stage_units, by_stages=False) == [
        "stages/common.py:1: stages.common imports stages.loop (stage stages.loop)"
    ]
    assert lazy_imports(graph, {}) == [
        "stages/beta/stage.py:2: stages.beta.stage imports stages.alpha.stage inside a function"
    ]
    assert cycles(graph, {}) == [["stages.alpha.stage", "stages.beta.stage"], ["stages.common", "stages.loop"]]
    assert cycles(graph, {("stages.beta.stage", "stages.alpha.stage"): "why"}) == [["stages.common", "stages.loop"]]
