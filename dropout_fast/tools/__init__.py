"""Command-line tools that are not part of the dropout API (run with python -m)."""
