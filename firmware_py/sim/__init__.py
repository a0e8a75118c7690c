"""Simulated vehicle: a DoIP entity on TCP/UDP and ECUs on a CAN bus, declared as data.
Speaks the real wire protocols; imports nothing from the client side of the firmware."""
