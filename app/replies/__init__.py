"""Replies as the sender's CPA asks: in the exchange or as a message of their own (issue 26)."""
