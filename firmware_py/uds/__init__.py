"""UDS (ISO 14229) on udsoncan: ECU sessions with tester present, vehicle identification,
fault memory, DIDs, security access, and (later) the flash and coding sequencers.
Knows nothing of tickets, users, the web page or the portal."""
