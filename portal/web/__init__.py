"""The portal's web pages for workshops and the operator (``vci-portal serve``): thin aiohttp
routes over the account, login and credit services (portal/accounts.py, login.py, credit.py),
server-rendered HTML with every value escaped, and one guard that checks each route's declared
need, the session and the CSRF token (docs/portal.md, "Web")."""
