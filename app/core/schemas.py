"""The project's own XSDs (trusted local files under `schemas/`), compiled once per thread."""

from __future__ import annotations

import threading
from pathlib import Path

from lxml import etree

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"

_local = threading.local()
# libxml2 builds its XSD built-in types on the first schema compile and keeps other global
# state while compiling: two threads compiling at once crashed the process (a double free) or
# left every later compile failing (XMLSchemaParseError). Compiles are rare (one per schema
# and thread); they take turns.
_compile_lock = threading.Lock()


def compile_schema(doc: etree._ElementTree) -> etree.XMLSchema:
    with _compile_lock:
        return etree.XMLSchema(doc)


def _parser() -> etree.XMLParser:
    # Our own files, yet parsed without entities, DTDs or network all the same; xs:import and
    # xs:include still resolve relative to the file.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def load_schema(relative: str) -> etree.XMLSchema:
    """The compiled schema at `SCHEMAS_DIR / relative`. One per thread: an XMLSchema keeps its
    error_log on the object, so lxml validators must not be shared between threads."""
    cache: dict[str, etree.XMLSchema] | None = getattr(_local, "schemas", None)
    if cache is None:
        cache = {}
        _local.schemas = cache
    schema = cache.get(relative)
    if schema is None:
        schema = compile_schema(etree.parse(str(SCHEMAS_DIR / relative), _parser()))
        cache[relative] = schema
    return schema
