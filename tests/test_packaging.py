"""The installed package holds every subpackage: the explicit setuptools list in pyproject.toml
names each folder of kdtheory/ (and the two plugin folders) that has an ``__init__.py``.

An editable install maps the whole source folder, so a subpackage missing from the list passes
every other test and only breaks a regular (wheel) install; this test catches that.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_on_disk() -> set[str]:
    found = set()
    dirs = _config()["package-dir"]
    for name, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    return found


def test_every_subpackage_is_listed_for_setuptools():
    listed = set(_config()["packages"])
    missing = sorted(_packages_on_disk() - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    stale = sorted(listed - _packages_on_disk())
    assert not stale, f"{stale} are listed in pyproject.toml but have no __init__.py"
