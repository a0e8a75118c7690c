"""Vehicle transports: CAN buses (python-can), ISO-TP channels (can-isotp), DoIP (doipclient),
serial adapters (pyserial via python-can's slcan). Gives the UDS layer one kind of per-ECU
connection (a udsoncan ``BaseConnection``) whatever the wire. Knows nothing of UDS jobs."""
