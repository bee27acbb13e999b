"""Attack plugins: one module per attack; every module here is imported by the registry."""
