"""The register store: every accepted notification in full, identifiers encrypted at rest,
service episodes, and the hand-off downstream (feed, export)."""
