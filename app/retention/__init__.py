"""Retention: personal data and raw bodies removed when due, the audit skeleton kept."""
