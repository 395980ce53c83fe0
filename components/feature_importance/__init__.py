"""feature_importance component."""
