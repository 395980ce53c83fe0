"""statistics component."""
