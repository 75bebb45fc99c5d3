"""The system suite: hubsync as real processes (serve, sandbox, PostgreSQL), seen from
outside (HTTP, SQL, the sandbox's API, the command)."""
