"""Schemas compiled by several threads at once, in fresh processes (libxml2 builds its XSD
built-in types on the first compile): without `schemas.compile_schema`'s lock about one
process in fifteen to twenty crashed (a double free) or left every later compile failing. A
race: the test can miss it by luck, never pass wrongly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RACE = """
import threading
from app.core.schemas import load_schema
from app.content.iplos.stream import _skeleton_schema

names = ["ebxml/ebms-header.xsd", "iplos-56.0.0/XPR-ipl-56.0.0.xsd", "msghead/msghead-v1.2.xsd",
         "apprec/apprec-v1.1.xsd"]
threads = 8
barrier = threading.Barrier(threads)
errors = []

def compile_at_once(i):
    barrier.wait()
    try:
        if i % 5 == 4:
            _skeleton_schema()
        else:
            load_schema(names[i % 4])
    except Exception as exc:
        errors.append(repr(exc))

workers = [threading.Thread(target=compile_at_once, args=(i,)) for i in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
print(len(errors), errors[:1])
"""

PROCESSES = 40


@pytest.mark.slow  # the second tier (`make test-all`): 40 fresh interpreters
def test_schemas_compiled_by_threads_at_once_in_fresh_processes() -> None:
    outcomes = [
        subprocess.run(
            [sys.executable, "-c", RACE], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        for _ in range(PROCESSES)
    ]
    assert [(o.returncode, o.stdout.strip()) for o in outcomes] == [(0, "0 []")] * PROCESSES
