"""The built-in content formats and their lookup by MsgInfo/Type and namespace. Apart from
app/content/registry.py (the types) so the plug-ins import the types without a cycle."""

from __future__ import annotations

from app.content.registry import ContentFormat


def _builtin_formats() -> tuple[ContentFormat, ...]:
    # Imported on first use, not with app.content: the plug-ins load their schemas.
    from app.content.iplos import FORMAT as IPLOS

    return (IPLOS,)


_cache: tuple[ContentFormat, ...] | None = None


def formats() -> tuple[ContentFormat, ...]:
    global _cache
    if _cache is None:
        _cache = _builtin_formats()
    return _cache


def lookup(msg_type: str) -> ContentFormat | None:
    """The content format for a MsgInfo/Type, or None (the caller answers AppRec T10)."""
    for f in formats():
        if f.msg_type == msg_type:
            return f
    return None


def lookup_namespace(namespace: str) -> ContentFormat | None:
    """The content format whose root element lives in `namespace` (for a bare content file)."""
    for f in formats():
        if f.namespace == namespace:
            return f
    return None
