"""The gateway: job runner (entitlement and precondition checks in one place), vehicle worker
thread, event bus, journal and SQLite storage, and the ENET bridge for the workshop's own tester
(``bridge_*``). Used by the CLI, the web page and the cloud link."""
