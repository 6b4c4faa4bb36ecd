"""HTTP dialects. Each translates the model to one public API's shape; no SQL, no rules."""
