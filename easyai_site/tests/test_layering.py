"""The layers hold: an app imports only the apps below it (function-level imports and model names count).

teams → clusters → jobs → files, endpoints → notebooks, serving, apps, pipelines, monitoring → easyai_site.
Sideways or upward needs go through signals, registries filled in AppConfig.ready(), or the periodic work
each app offers the site's clock.
"""

import ast
from pathlib import Path

from django.conf import settings

LEVEL = {"teams": 0, "accounts": 1, "assets": 1, "clusters": 1, "jobs": 2, "files": 3, "endpoints": 3, "notebooks": 4, "serving": 4,
         "apps": 4, "webapps": 4, "pipelines": 4, "monitoring": 4, "usage": 4}  # fmt: skip


def crossings(root: Path) -> set[tuple[str, str]]:
    found = set()
    for app, level in LEVEL.items():
        for path in (root / app).rglob("*.py") if (root / app).is_dir() else ():
            rel = path.relative_to(root)
            if "tests" in rel.parts or "migrations" in rel.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.count(".") == 1:
                    head, tail = node.value.split(".")
                    if tail[:1].isupper():  # "jobs.Job": a model named by string
                        names = [node.value]
                for name in names:
                    top = name.split(".")[0]
                    if top in LEVEL and top != app and LEVEL[top] >= level:
                        found.add((rel.as_posix(), name))
    return found


def test_no_app_imports_an_app_above_it_or_beside_it():
    assert crossings(Path(settings.BASE_DIR)) == set()


def test_the_check_sees_a_crossing(tmp_path):
    (tmp_path / "teams").mkdir()
    (tmp_path / "teams" / "services.py").write_text("def f():\n    from clusters import provisioning\n")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "apps.py").write_text("SHARED = ('notebooks.Notebook',)\n")
    assert crossings(tmp_path) == {("teams/services.py", "clusters"), ("jobs/apps.py", "notebooks.Notebook")}


def borrowed_test_helpers(root: Path) -> set[tuple[str, str]]:
    """Imports of another app's tests package: shared test support belongs in testing/ (the pytest plugin)."""
    found = set()
    for path in root.glob("*/tests/**/*.py"):
        app = path.relative_to(root).parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if len(parts) > 1 and parts[1] == "tests" and parts[0] != app:
                    found.add((path.relative_to(root).as_posix(), name))
    return found


def test_no_app_borrows_another_apps_test_helpers():
    assert borrowed_test_helpers(Path(settings.BASE_DIR)) == set()


def test_the_check_sees_a_borrowed_helper(tmp_path):
    (tmp_path / "endpoints" / "tests").mkdir(parents=True)
    (tmp_path / "endpoints" / "tests" / "conftest.py").write_text("from notebooks.tests.conftest import fetch\n")
    (tmp_path / "notebooks" / "tests").mkdir(parents=True)
    (tmp_path / "notebooks" / "tests" / "test_a.py").write_text("from notebooks.tests.conftest import fetch\n")
    assert borrowed_test_helpers(tmp_path) == {("endpoints/tests/conftest.py", "notebooks.tests.conftest")}
