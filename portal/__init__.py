"""The reference portal (``vci-portal``): the portal's signing keys, tickets for every tariff,
revocation lists. Later (issue 6): boxes online, remote sessions, outbox records.
Workshops' accounts, logins, prepaid credit, ticket purchases and invoices: accounts.py,
login.py, credit.py, invoices.py over the database in db/ (docs/portal.md)."""
