"""The command line: `kpr-mottak` and its sub-commands."""
