"""Content formats inside MsgHead (IPLOS XPR(ipl) 56.0.0, ...), as plug-ins keyed by
MsgInfo/Type and namespace. Pure: bytes or elements in, findings and extracted rows out."""

from app.content.builtin import formats, lookup, lookup_namespace
from app.content.registry import ContentFormat

__all__ = ["ContentFormat", "formats", "lookup", "lookup_namespace"]
