"""Cipher plugins: one module per cipher; every module here is imported by the registry."""
