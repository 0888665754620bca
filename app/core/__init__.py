"""Types shared by every layer of the pure core: findings, rules and the hardened XML parser."""
