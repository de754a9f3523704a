"""Example models that ship with dropout_fast (for ``python -m dropout_fast audit``)."""
