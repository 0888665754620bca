"""Who may read what: API tokens, their roles and the principal a request acts as."""
