"""SAM's ``build-<LogicalId>`` targets (``BuildMethod: makefile``) package a function for Lambda:
both packages, and the runtime dependencies as wheels for Python 3.13 on arm64."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


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
    # THEN the handler's packages are there, without caches
    assert (artifacts / "functions" / "executor" / "handler.py").is_file()
    assert (artifacts / "statemachine" / "__init__.py").is_file()
    assert not list(artifacts.glob("functions/**/__pycache__"))
    # AND every runtime dependency, compiled ones for the Lambda platform (cp313, aarch64), not this machine
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    installed = {p.name.split("-")[0].lower().replace("_", "-") for p in artifacts.glob("*.dist-info")}
    for dep in deps:
        name = dep.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower().replace("_", "-")
        assert name in installed, name
    native = list(artifacts.glob("pydantic_core/*.so"))
    assert native and all("cpython-313-aarch64-linux-gnu" in p.name for p in native)


def test_build_target_refuses_to_run_without_artifacts_dir() -> None:
    done = subprocess.run(["make", "-s", "build-ApiFunction"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "ARTIFACTS_DIR" in done.stdout + done.stderr
