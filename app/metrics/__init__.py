"""Prometheus metrics: counters and histograms recorded where things happen
(`instruments`), and the exposition served at `/metrics` (`exposition`), which adds gauges
read from the database at scrape time, since the database, not any one process, holds the
truth about the queue, the conflicts and the shared rate limit."""
