"""push component."""
