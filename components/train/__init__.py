"""train component."""
