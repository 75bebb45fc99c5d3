"""Where a webhook becomes work: deliveries written in group commits, and each event routed to
a job, inside the one transaction that stores it."""
