"""Deadline extensions KPR grants single municipalities (issue 21, item 7)."""
