"""The notification outbox: emails to innsendingsansvarlig, sent outside the request."""
