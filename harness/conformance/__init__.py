"""The contract suites every registered cipher, attack and classifier must pass, shipped with the package.

Each suite is parametrised over its registry, so a plugin is tested the moment it registers,
and a plugin author runs them against an installed plugin with no checkout:

    python -m pytest -p harness.conformance.plugin --pyargs harness.conformance -k my_cipher

The pytest plugin :mod:`harness.conformance.plugin` provides their ``--device`` option and
fixtures; it is loaded only when asked for, never into other projects' test runs.
"""
