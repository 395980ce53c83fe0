"""schema component."""
