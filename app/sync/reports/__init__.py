"""Reports that come to the operator: after each scheduled reconciliation run, and when a
scheduled job fails or runs late, a summary posted to a webhook and e-mailed over SMTP,
through an outbox so a destination that is down delays the report and never the run."""
