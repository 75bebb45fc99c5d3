"""The sync, in rooms by role:

- `core/`: pure: field rules, values and their canonical form, the per-field decision, the
  job contract, retry timing, webhook events as parsed, link and field-memory records;
- `engine/`: a batch of jobs in, one outcome per job out: pairing, deciding, writing both sides;
- `worker/`: where a job is processed: the queue worker, lanes, leases, wake-ups, gates;
- `intake/`: where a webhook becomes work: group commit and routing;
- `operator/`: where an operator's action enters: pause, retry, rules, conflicts, overview;
- `reconcile/`: the daily full comparison and the catch-up;
- `schedule/`: the in-process scheduler.
"""
