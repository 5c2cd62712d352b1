"""SAM's ``build-<LogicalId>`` targets (``BuildMethod: makefile``) package a function for Lambda:
both packages, and the runtime dependencies as wheels for Python 3.13 on arm64."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.unit.test_build_services import shipped_services

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

PY313_MAGIC = (3571).to_bytes(2, "little") + b"\r\n"
"""``importlib.util.MAGIC_NUMBER`` of Python 3.13."""


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_build_target_ships_both_packages_and_platform_wheels(tmp_path: Path) -> None:
    artifacts = tmp_path / "ExecutorFunction"
    # WHEN SAM would run the target (it sets ARTIFACTS_DIR)
    done = subprocess.run(
        ["make", "--no-print-directory", "build-ExecutorFunction", f"ARTIFACTS_DIR={artifacts}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # THEN the handler's packages are there
    assert (artifacts / "functions" / "executor" / "handler.py").is_file()
    assert (artifacts / "statemachine" / "__init__.py").is_file()
    # AND every module carries its bytecode for the runtime's Python (3.13), checked by hash, never by
    # mtime (a zip keeps mtimes to 2 s, which would make Lambda ignore it and compile at each cold start)
    sources = list(artifacts.rglob("*.py"))
    assert len(sources) > 500
    missing = [s for s in sources if not (s.parent / "__pycache__" / f"{s.stem}.cpython-313.pyc").is_file()]
    assert missing == []
    assert {p.name.split(".")[-2] for p in artifacts.rglob("*.pyc")} == {"cpython-313"}
    handler_pyc = artifacts / "functions" / "executor" / "__pycache__" / "handler.cpython-313.pyc"
    header = handler_pyc.read_bytes()[:16]
    assert header[:4] == PY313_MAGIC
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, source not checked
    # AND every runtime dependency, compiled ones for the Lambda platform (cp313, aarch64), not this machine
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    installed = {p.name.split("-")[0].lower().replace("_", "-") for p in artifacts.glob("*.dist-info")}
    for dep in deps:
        name = dep.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower().replace("_", "-")
        assert name in installed, name
    native = list(artifacts.glob("pydantic_core/*.so"))
    assert native and all("cpython-313-aarch64-linux-gnu" in p.name for p in native)
    # AND botocore's data only for the services the functions call (the Makefile's LAMBDA_BOTOCORE_SERVICES)
    shipped = {p.name for p in (artifacts / "botocore" / "data").iterdir() if p.is_dir()}
    assert shipped == shipped_services()


def test_build_target_refuses_to_run_without_artifacts_dir() -> None:
    done = subprocess.run(["make", "-s", "build-ApiFunction"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "ARTIFACTS_DIR" in done.stdout + done.stderr
