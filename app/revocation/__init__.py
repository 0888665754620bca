"""Revocation data that stays current while the service runs: CRLs fetched over HTTP."""
