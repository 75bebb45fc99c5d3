"""The in-process scheduler and the periodic work it runs."""
