"""Prometheus metrics recorded where things happen (`instruments`): counters and histograms
the queue, the HubSpot client and the webhook intake add to. The exposition served at
`/metrics` (`app.api.metrics_exposition`) adds gauges read from the database at scrape time,
since the database, not any one process, holds the truth about the queue, the conflicts and
the shared rate limit."""
