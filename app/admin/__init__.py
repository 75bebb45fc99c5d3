"""The operator's console: server-rendered pages behind a login (`/admin`)."""
