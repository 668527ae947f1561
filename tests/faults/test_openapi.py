"""The OpenAPI contract (/openapi.json), fuzzed by the real schemathesis CLI against the
live app for a bounded number of examples."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testing.app import Running
from testing.ci import skip_or_fail

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,unsupported_method,allow_header_conformance"
)


def test_classify_declares_its_three_bodies_and_every_answer(tree: Running) -> None:
    doc = tree.client.get("/openapi.json").json()
    classify = doc["paths"]["/classify"]["post"]
    content = classify["requestBody"]["content"]
    assert {"image/jpeg", "image/gif", "multipart/form-data", "application/json"} <= set(content)
    assert content["application/json"]["example"]["images"]
    assert {"200", "400", "408", "413", "415", "431", "503", "504"} <= set(classify["responses"])
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert any(t.startswith("text/plain") for t in metrics)


def test_schemathesis_finds_no_server_error_nor_schema_violation(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if st is None:
        skip_or_fail("schemathesis is not installed (pip install -e '.[dev]')")
    with serve(max_queue=256) as running:
        # a 1 ms deadline's 504 is the contract, not a fault: every case gets 30 s (-H)
        args = [
            st, "run", f"{running.url}/openapi.json", "--checks", CHECKS,
            "--max-examples", "25", "--seed", "11", "--phases", "examples,coverage,fuzzing",
            "--request-timeout", "30", "--no-color", "-H", "X-Request-Timeout-Ms: 30000",
        ]  # fmt: skip
        run = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
