"""ebXML transport layer (ebMS 2.0, Norwegian profile HIS 1037): pure, no I/O.

- `mime.parse_body` / `mime.parse_eml`: SOAP-with-attachments -> `MimeMessage`
- `envelope.parse_envelope`: SOAP envelope -> `EbmsHeader` (+ schema validation)
- `checks.check_header`: the pure transport checks (receiver, TimeToLive, Manifest)
- `build.build_message` / `build_reply` / `build_message_error`: outgoing messages
- `rules.RULES`: the transport rule catalogue
"""
