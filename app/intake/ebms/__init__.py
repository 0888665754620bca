"""The ebXML layer of the intake: what ebXML transports (over HTTP today, over SMTP later)
share around the core: the request and its row, the ebMS header's checks, the MessageError."""
