"""The files a user looks for agree with each other: the version, the licence, the citation."""

import re
from pathlib import Path

import sgmlab

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_version() -> str:
    return re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)


def test_the_version_is_pyprojects_everywhere():
    v = _pyproject_version()
    assert sgmlab.__version__ == v, "reinstall (make setup) after changing pyproject.toml's version"
    assert re.search(rf'^version: "{re.escape(v)}"', (ROOT / "CITATION.cff").read_text(), re.M)
    assert re.search(rf"^## {re.escape(v)} ", (ROOT / "CHANGELOG.md").read_text(), re.M)


def test_the_licence_and_the_citation_are_there():
    assert 'license = {text = "MIT"}' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    cff = (ROOT / "CITATION.cff").read_text()
    assert "2209.11215" in cff and "Sampling is as easy as learning the score" in cff
