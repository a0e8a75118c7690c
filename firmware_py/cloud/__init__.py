"""Link to the portal (MQTT 5 with paho-mqtt, aiohttp WebSocket fallback). Not built yet:
see issue 6 and README.md's status table."""
