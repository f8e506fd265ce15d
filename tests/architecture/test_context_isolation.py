"""Each context's tests run alone (``make test-context CONTEXT=…``, ``tests/isolation.py``): its
own use cases and rules on in-memory fakes, and the contract tests that hold the fakes of the
contexts it calls to the published contract the real ones keep. No test of another context runs."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from app.registry import BY_NAME, CONTEXTS
from tests.architecture.conftest import REPOSITORY

RUN_TIMEOUT = 300


def run_alone(context: str, report: Path) -> tuple[subprocess.CompletedProcess[str], list[tuple[str, str]]]:
    """``pytest --context <context>`` as ``make test-context`` runs it; its outcome and the
    (module, test) of every test it ran."""
    command = [sys.executable, "-m", "pytest", "--context", context, "-q", "-p", "no:cacheprovider"]
    environment = {**os.environ, "PYTEST_ADDOPTS": ""}
    result = subprocess.run(
        [*command, f"--junitxml={report}", "tests/contexts"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    cases = [(case.get("classname", ""), case.get("name", "")) for case in ElementTree.parse(report).iter("testcase")]
    return result, cases


@pytest.mark.parametrize("context", CONTEXTS)
def test_a_context_runs_alone_against_the_contract_tested_fakes_of_what_it_calls(context: str, tmp_path: Path) -> None:
    result, cases = run_alone(context, tmp_path / "report.xml")

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    own = [name for module, name in cases if module.startswith(f"tests.contexts.{context}.unit.")]
    assert own, f"no test of {context} ran"
    faked = {module for module, name in cases if ".contract." in module and "[fake-" in name}
    assert faked == {f"tests.contexts.{called}.contract.test_api" for called in BY_NAME[context].calls}, cases
    others = [
        (module, name)
        for module, name in cases
        if not module.startswith(f"tests.contexts.{context}.unit.") and "[fake-" not in name
    ]
    assert others == [], "only the context's unit tests, and fakes standing for the other contexts"
