"""The runner wing, the top floor: command line, presets and the config schema, the grid of cells,
the three cell kinds, provenance and executors.  Nothing below it (``harness`` ground floor, the
plugins in ``ciphers``/``attacks``/``harness.classifiers``, ``reports``) imports it;
``tests/test_layering.py`` says so."""
