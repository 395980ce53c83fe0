"""preflight: every deterministic input error of a run, found in seconds, in a step that is never retried."""
