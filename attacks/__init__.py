"""Attack plugins: one module per attack; the registry reads every module here (and imports one when asked for its plugin)."""
