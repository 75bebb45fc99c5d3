"""Where an operator's action enters, whichever door it comes through (console, API, CLI):
pause and resume, retries, rule changes, resolving conflicts by hand, and the overview."""
