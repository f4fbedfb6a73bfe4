"""The machinery of ``skcl benchmark``: streams, strategy presets, runs, reports."""
