"""`import ner_ray` (and its data, metrics, config and CLI modules) stays cheap: no Ray, MLflow, Optuna, vLLM,
and no torch to validate a study; the package's import graph has no cycle and keeps its layers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

HEAVY = ("ray", "mlflow", "optuna", "vllm", "deepspeed", "unsloth")


def test_import_does_not_pull_heavy_dependencies():
    code = (
        "import sys, importlib\n"
        "for m in ('ner_ray', 'ner_ray.data.corpora', 'ner_ray.data.pubtator', 'ner_ray.data.stats', 'ner_ray.metrics',\n"
        "          'ner_ray.config', 'ner_ray.registry', 'ner_ray.cli'):\n"
        "    importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_validating_a_study_imports_no_torch():
    code = (
        "import sys\n"
        "from ner_ray.config import StudyConfig, load_study\n"
        "load_study('search_spaces/compare_suite.yaml')\n"
        "StudyConfig().with_updates({'model.family': 'crf', 'data.format': 'bioc'})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'ray')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------------------------------ import graph
PACKAGE = Path(__file__).resolve().parents[1] / "ner_ray"
BOTTOM = ("ner_ray.data", "ner_ray.metrics", "ner_ray.config", "ner_ray.registry", "ner_ray.errors", "ner_ray.artifacts",
          "ner_ray.credentials")
ABOVE_BOTTOM = ("ner_ray.families", "ner_ray.inference", "ner_ray.train", "ner_ray.tune", "ner_ray.serve", "ner_ray.cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """ner_ray module -> the ner_ray modules it imports anywhere in its file (at the top, inside functions,
    under TYPE_CHECKING): the design's arrows, not only what runs at import time."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in files else node.module
                           for alias in node.names]
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 40 and "ner_ray.inference.evaluate" in graph
    assert cycles(graph) == []


def test_inference_and_serve_import_neither_train_nor_tune():
    wrong = {(m, t) for m, targets in import_graph().items() if m.startswith(("ner_ray.inference", "ner_ray.serve"))
             for t in targets if t.startswith(("ner_ray.train", "ner_ray.tune"))}
    assert wrong == set()


def test_the_bottom_layer_imports_nothing_above_it():
    wrong = {(m, t) for m, targets in import_graph().items() if m.startswith(BOTTOM)
             for t in targets if t.startswith(ABOVE_BOTTOM)}
    assert wrong == set()


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
