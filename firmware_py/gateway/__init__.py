"""The gateway: job runner (entitlement and precondition checks in one place), vehicle worker
thread, event bus, journal and SQLite storage. Used by the CLI, the web page and the cloud link."""
