"""The pure core of the sync: field rules, values and their canonical form, the per-field
decision, the queue's job contract, retry timing, webhook events as parsed, and the records of
what hubsync remembers. Nothing here does I/O: no database, no HTTP, no web framework."""
