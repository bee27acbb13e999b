"""Cipher plugins: one module per cipher; the registry reads every module here (and imports one when asked for its plugin)."""
