"""docs/architecture.md tells the truth: every file it names exists, and the aggregator's data paths it draws
(store -> views -> api -> page; MQTT -> ingest -> store -> views -> mood publisher -> mood topic) are the imports:
no cycle, and the API and the mood publisher reach the store only through the views."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
NAMED = re.compile(r"`([\w./-]+\.(?:py|js|html|md))`|\]\(([\w./-]+\.md)\)")


def _named_files() -> list[tuple[str, Path | None, str]]:
    """(name, folder a bare name is looked for in, the line) for each file the page names."""
    found = []
    for line in DOC.read_text().splitlines():
        row = re.match(r"\|\s*\d+\s*\|\s*`([\w-]+)/`", line)  # a floor's row: bare names live in its folder
        for code, link in NAMED.findall(line):
            if link:
                found.append((link, DOC.parent, line))
            elif "/" in code:
                found.append((code, None, line))
            else:
                found.append((code, ROOT / row.group(1) if row else None, line))
    return found


def test_every_file_the_architecture_page_names_exists():
    names = _named_files()
    assert len(names) > 40  # the page names the files; an empty match would pass anything
    missing = []
    for name, folder, line in names:
        if folder is None:
            exists = (ROOT / name).is_file()
        elif folder == DOC.parent:
            exists = (folder / name).is_file()
        else:
            exists = any(folder.rglob(name))
        if not exists:
            missing.append(f"{name} (in: {line.strip()[:80]})")
    assert not missing, "docs/architecture.md names files that do not exist: " + "; ".join(missing)


def _aggregator_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in [*(ROOT / "aggregator").glob("*.py"), *(ROOT / "aggregator" / "routes").glob("*.py")]:
        module = "api" if path.parent.name == "routes" else path.stem  # the API's routers are part of it
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "emo7ion.aggregator":
                    imported |= {alias.name for alias in node.names}
                elif node.module.startswith("emo7ion.aggregator."):
                    imported.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                imported |= {a.name.split(".")[2] for a in node.names if a.name.startswith("emo7ion.aggregator.")}
        graph.setdefault(module, set()).update({"api" if name == "routes" else name for name in imported} - {module})
    return graph


def test_the_aggregator_paths_on_the_page_are_the_imports():
    graph = _aggregator_imports()
    text = DOC.read_text()
    for chain in (["store", "views", "api"], ["ingest", "store", "views", "mood_publisher"]):
        assert " → ".join(f"`aggregator/{name}.py`" for name in chain[-2:]) in text.replace("\n  ", " ")
    # the API and the mood publisher read through the views only; the publisher writes through a function
    assert not graph["api"] & {"store", "ingest", "service", "mood_publisher"}
    assert not graph["mood_publisher"] & {"store", "ingest", "api", "service"}
    assert not graph["views"] & {"ingest", "api", "mood_publisher", "service"}
    assert not graph["store"] & {"ingest", "views", "api", "mood_publisher", "service"}
    assert {"views", "schemas"} <= graph["api"] and "views" in graph["mood_publisher"] and "store" in graph["views"]

    seen: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path, module))
        if module in seen:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*path, module))
        seen.add(module)

    for module in graph:
        visit(module, ())
