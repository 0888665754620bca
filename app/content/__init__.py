"""Content formats inside MsgHead (IPLOS XPR(ipl) 56.0.0, ...), as plug-ins keyed by
MsgInfo/Type and namespace. Pure: bytes or elements in, findings and extracted rows out."""

from app.content.registry import ContentFormat, formats, lookup, lookup_namespace

__all__ = ["ContentFormat", "formats", "lookup", "lookup_namespace"]
