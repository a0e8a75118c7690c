"""The reference portal (``vci-portal``): the portal's signing keys, tickets for every tariff,
revocation lists. Later (issue 6): boxes online, remote sessions, outbox records."""
