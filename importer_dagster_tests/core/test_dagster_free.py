"""The core never imports Dagster, directly or through another module, and its tests run without it."""

import subprocess
import sys
from pathlib import Path

import importer_dagster.core

CORE_TESTS = Path(__file__).resolve().parent
REPO = CORE_TESTS.parents[1]
BLOCK_DAGSTER = "import sys; sys.modules['dagster'] = None; "
"""A `None` entry makes every `import dagster` raise ImportError in that interpreter."""


def core_modules() -> list[str]:
    return sorted(f"importer_dagster.core.{path.stem}" for path in Path(importer_dagster.core.__path__[0]).glob("*.py"))


def test_every_core_module_imports_where_dagster_cannot():
    modules = core_modules()
    assert "importer_dagster.core.importing" in modules and len(modules) > 20
    script = BLOCK_DAGSTER + "".join(f"import {module}; " for module in modules)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_core_tests_pass_where_dagster_cannot_be_imported():
    """Without the package-wide conftest (`--confcutdir`) and its Dagster-aware settings (`-c`): the
    simulator fixtures come straight from `fixtures`, loaded as a plugin."""
    script = BLOCK_DAGSTER + (
        "import pytest; sys.exit(pytest.main(["
        "'-q', '-p', 'no:cacheprovider', '-p', 'importer_dagster_tests.fixtures', "
        f"'-c', '/dev/null', '--rootdir', {str(REPO)!r}, "
        f"'--confcutdir', {str(CORE_TESTS)!r}, '--ignore', {__file__!r}, {str(CORE_TESTS)!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-500:]
