"""How the package hangs together: the edge is a leaf, no import cycle, configs repeat the constructor defaults."""

from __future__ import annotations

import ast
import inspect
from dataclasses import asdict, is_dataclass
from pathlib import Path

import pytest
import yaml

from .conftest import MODELS, REPO

PACKAGE = REPO / "ganad_plugin"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def plugin_imports(path: Path) -> set[str]:
    """The ganad_plugin modules ``path`` imports (absolute or relative), at any depth of the file."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ganad_plugin")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])])
            if base.startswith("ganad_plugin"):
                found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules}


GRAPH = {module_name(path): plugin_imports(path) for path in PACKAGE.rglob("*.py")}


# the edge's pure helpers that training may use (STYLE.md): reading image files and writing the IR's precision
# marks (xml only), nothing of the runtime
EDGE_HELPERS = {"ganad_plugin.edge.images", "ganad_plugin.edge.precision"}


def test_the_edge_imports_nothing_from_the_models_and_the_models_only_its_pure_helpers() -> None:
    for module, imports in GRAPH.items():
        if module.startswith("ganad_plugin.edge"):
            outside = {name for name in imports if not name.startswith("ganad_plugin.edge")}
            assert not outside, f"{module} (edge) imports {outside}"
        if module.startswith("ganad_plugin.models"):
            edge = {name for name in imports if name.startswith("ganad_plugin.edge")} - EDGE_HELPERS
            assert not edge, f"{module} (models) imports {edge}"
    for helper in EDGE_HELPERS:
        assert not GRAPH[helper], f"{helper} must stay free of the runtime: it imports {GRAPH[helper]}"
        source = (REPO / (helper.replace(".", "/") + ".py")).read_text()
        assert "openvino" not in source, f"{helper} must not import OpenVINO"


def test_no_import_cycle_in_the_package() -> None:
    def visit(module: str, path: tuple[str, ...]) -> None:
        for imported in GRAPH.get(module, ()):
            # a package importing its own submodules is how packages work; a module importing back is a cycle
            if imported in path and not imported.startswith(module + "."):
                pytest.fail(f"import cycle: {' -> '.join([*path, imported])}")
            if imported not in path and not module.startswith(imported + "."):
                visit(imported, (*path, imported))

    for module in GRAPH:
        visit(module, (module,))


def plain(value):
    return asdict(value) if is_dataclass(value) else value


@pytest.mark.parametrize("name", MODELS)
def test_config_repeats_the_constructor_defaults_and_the_epoch_budget(name: str) -> None:
    import ganad_plugin.models

    model_class = getattr(ganad_plugin.models, name)
    config = yaml.safe_load((REPO / "configs" / f"{name.lower()}.yaml").read_text())
    assert config["model"]["class_path"] == f"ganad_plugin.models.{name}"
    init_args = config["model"]["init_args"]
    defaults = {}
    for cls in model_class.__mro__:
        if "__init__" in vars(cls) and cls.__module__.startswith("ganad_plugin"):
            for parameter in inspect.signature(cls.__init__).parameters.values():
                if parameter.default is not inspect.Parameter.empty:
                    defaults.setdefault(parameter.name, plain(parameter.default))
    for key, value in init_args.items():
        assert key in defaults, f"configs/{name.lower()}.yaml sets {key}, which {name} does not take"
        assert value == defaults[key], f"{name}.{key}: config {value} != constructor default {defaults[key]}"
    shared = {"network", "evidence", "sampling", "optimiser"}
    assert shared <= set(init_args), f"configs/{name.lower()}.yaml lacks {shared - set(init_args)}"
    assert config["trainer"]["max_epochs"] == model_class.default_max_epochs
    assert config["data"]["class_path"] == "anomalib.data.MVTecAD"
