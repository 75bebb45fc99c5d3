"""The sync engine: a batch of claimed jobs in, one outcome per job out. It pairs each customer
with its company, decides every field (`app.sync.core`), writes both sides and records what
it saw."""
