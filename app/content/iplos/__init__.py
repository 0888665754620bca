"""IPLOS in KPR, XPR(ipl) 56.0.0 (`http://www.npr.no/xmlstds/56_0_0_ipl`), MsgInfo/Type KPR_IPL."""

from app.content.iplos.codes import NS
from app.content.iplos.digest import KeyReader
from app.content.iplos.rules import RULES
from app.content.iplos.schema import SCHEMA_PATH
from app.content.iplos.stream import (
    msghead_history_keys,
    stream_history_keys,
    validate_msghead_content,
    validate_stream,
)
from app.content.iplos.validate import validate_melding
from app.content.registry import ContentFormat

FORMAT = ContentFormat(
    msg_type="KPR_IPL",
    namespace=NS,
    root="Melding",
    title="IPLOS-melding til KPR, XPR(ipl) 56.0.0",
    schema_path=SCHEMA_PATH,
    check=validate_stream,
    history_keys=stream_history_keys,
    check_in_msghead=validate_msghead_content,
    history_keys_in_msghead=msghead_history_keys,
    key_collector=KeyReader,
)

__all__ = ["FORMAT", "NS", "RULES", "SCHEMA_PATH", "validate_melding", "validate_stream"]
