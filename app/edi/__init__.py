"""The EDI channel (issue 25): ebXML over SMTP through NHN's meldingskontoer, on the same intake
as `POST /ebms`. Mailboxes are polled over IMAP (`imap`, `runner`), each mail goes through
`IntakeService.receive` (`handler`; `oversize` for a mail over the size limit), and replies
leave by mail through an outbox (`repository`, `sender`, `mail`)."""
