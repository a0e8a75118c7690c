"""VCI gateway firmware.

Layers (docs/architecture.md), each importing only the ones below it::

    web/, cloud/      tablet page and portal link
    gateway/          jobs, tickets, events, journal, storage
    uds/              UDS sessions, diagnosis, flash and coding sequencers
    transport/        CAN, ISO-TP, DoIP, serial adapters
    sim/              simulated vehicle (speaks the wire protocols; imports none of the above)

``errors`` and ``config`` are shared by every layer.
"""

__version__ = "0.1.0"
