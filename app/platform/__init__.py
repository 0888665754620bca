"""What every layer stands on: settings, database, logs, metrics, the SQLite writer."""
