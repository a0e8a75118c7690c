"""The tablet's local page (aiohttp). Not built yet: see issue 5 and README.md's status table."""
