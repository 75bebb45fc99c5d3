"""Reconciliation: the daily full comparison of both sides and the catch-up every few
minutes, both feeding the same queue and engine as every other source.

`categories` judges (pure), `full_run` streams and records a run, `catchup` queues recent
changes, `service` starts and resumes runs in a process, `schedule` puts them on the
scheduler, `runtime` wires them into the service's lifespan.
"""
