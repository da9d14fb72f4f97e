"""Every code example in the README and the guides runs as written: Python blocks in order in one
namespace per page, and each line of a bash block (``sgmlab ...`` through the command's entry
point, ``torchrun ...`` as a process), in a fresh folder per page. ``make ...`` lines set up the
project and are what CI itself runs, so they are not run again here."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sgmlab.cli import main

ROOT = Path(__file__).parent.parent
PAGES = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))
SKIPPED = ("make ",)  # set-up, run by CI itself


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block, in order."""
    return re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S)


def run_bash(code: str, page: str) -> None:
    for line in code.splitlines():
        argv = shlex.split(line, comments=True)
        if not argv or line.startswith(SKIPPED):
            continue
        if argv[0] == "sgmlab":
            assert main(argv[1:]) == 0, f"{page}: {line}"
        elif argv[0] == "torchrun":
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            cmd = [sys.executable, "-m", "torch.distributed.run", *argv[1:]]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{page}: {line}\n{done.stderr[-2000:]}"
        else:
            raise AssertionError(f"{page}: a bash line this test does not know how to run: {line}")


@pytest.mark.parametrize("page", PAGES)
def test_every_example_on_the_page_runs(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples write results/, runs/, plan.json ...
    namespace: dict = {}
    found = blocks((ROOT / page).read_text())
    for lang, code in found:
        if lang == "python":
            exec(compile(code, page, "exec"), namespace)
        elif lang == "bash":
            run_bash(code, page)
        else:
            raise AssertionError(f"{page}: a ```{lang} block; examples are python or bash")
    capsys.readouterr()


def test_the_readme_is_a_front_door():
    """At most 150 lines, the two commands first, a Python and a command-line quickstart."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    kinds = [lang for lang, _ in blocks(text)]
    assert kinds[:3] == ["bash", "python", "bash"]
    assert "make demo" in blocks(text)[0][1] and "make test" in blocks(text)[0][1]


MEASURED = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?(?:e-?\d+)?)(x|%)?(?![\w.])")


def quoted_numbers(paragraph: str) -> list[str]:
    """The numbers of a paragraph that look measured: with a decimal point, an exponent, or an x or %
    after them (sizes, budgets and other integers are settings, not results)."""
    return [num + (unit or "") for num, unit in MEASURED.findall(paragraph)
            if unit or "." in num or "e" in num]


def unsourced(text: str) -> list[str]:
    """The numbers of ``text`` that a paragraph quotes beside a result file under benchmarks/ and that
    the file does not hold."""
    bad = []
    for para in re.split(r"\n\s*\n", re.sub(r"```.*?```", "", text, flags=re.S)):
        sources = re.findall(r"benchmarks/([\w./]+\.md)", para)
        if sources:
            held = " ".join((ROOT / "benchmarks" / s).read_text() for s in sources
                            if (ROOT / "benchmarks" / s).is_file())
            bad += [f"{n} (cites {', '.join(sources)})" for n in quoted_numbers(para) if n not in held]
    return bad


def test_numbers_quoted_in_the_docs_are_the_benchmark_files_numbers():
    """A paragraph that cites a result file under benchmarks/ quotes only numbers that file holds."""
    bad = [f"{page}: {b}" for page in PAGES for b in unsourced((ROOT / page).read_text())]
    assert not bad, "\n".join(bad)


def test_the_number_check_fails_on_a_number_its_source_does_not_hold():
    assert quoted_numbers("a median 2x, 1.5x and 4.6% (at 10 evaluations, n = 20000)") == ["2x", "1.5x", "4.6%"]
    assert unsourced("diffusers needs a median 2x as many (`benchmarks/evaluations_saved.md`).") == []
    assert unsourced("diffusers needs a median 2.25x as many (`benchmarks/evaluations_saved.md`).") == [
        "2.25x (cites evaluations_saved.md)"]


API = ["sgmlab", "sgmlab.targets", "sgmlab.processes", "sgmlab.grids", "sgmlab.scores", "sgmlab.samplers",
       "sgmlab.metrics", "sgmlab.theory", "sgmlab.learn", "sgmlab.interop.scheduler", "sgmlab.interop.peers",
       "sgmlab.experiments"]
DOCUMENTED = ["sgmlab.grids", "sgmlab.sample", "sgmlab.default_plan", "sgmlab.tune"]  # numpydoc, complete
UNDOCUMENTED_AT_MOST = 124  # public callables still without a Parameters section: may only fall


def _without_parameters() -> list[str]:
    """Public functions and classes of the API reference's modules that take arguments and have no
    numpydoc Parameters section (names imported from elsewhere count where they are defined)."""
    import importlib
    import inspect

    out = set()
    for name in API:
        mod = importlib.import_module(name)
        for attr in getattr(mod, "__all__", [a for a in dir(mod) if not a.startswith("_")]):
            obj = getattr(mod, attr)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or not obj.__module__.startswith("sgmlab"):
                continue
            try:
                params = [p for p in inspect.signature(obj).parameters if p != "self"]
            except (TypeError, ValueError):
                params = []
            if params and "Parameters\n----------" not in (inspect.getdoc(obj) or ""):
                out.add(f"{obj.__module__}.{obj.__qualname__}")
    return sorted(out)


def test_the_api_reference_documents_parameters():
    missing = _without_parameters()
    done = [m for m in missing if any(m.startswith(p + ".") or m == p for p in DOCUMENTED)
            or m.startswith("sgmlab.defaults.sample") or m.startswith("sgmlab.defaults.default_plan")]
    assert not done, done
    assert len(missing) <= UNDOCUMENTED_AT_MOST, f"{len(missing)} public callables without Parameters: " \
        f"document the new ones ({missing})"
