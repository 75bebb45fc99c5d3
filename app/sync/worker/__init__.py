"""Where a job is processed: the queue worker, its lanes and leases, the wake-up on new work,
the gates a job waits behind, and its start and stop inside the service's lifespan."""
