"""Report generation: markdown tables (tabulate), PNG figures, machine-readable results."""
