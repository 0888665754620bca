"""The open feedback on content and data quality (issue 14): aggregates refreshed in the
background from the stored history, read by public pages, JSON and CSV. No personal data."""
