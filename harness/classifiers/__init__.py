"""Classifier plugins: one module per classifier; every module here is imported by the registry."""
