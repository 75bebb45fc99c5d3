"""What runs over time inside the service's lifespan: the in-process scheduler and its
periodic jobs, and the start and stop of the queue machinery (queue, worker, wake-ups)."""
