"""Link to the portal. Built: the remote protocol's message envelope (``schema``). Not built
yet: the MQTT 5 link (paho-mqtt) and the aiohttp WebSocket fallback (issue 6)."""
