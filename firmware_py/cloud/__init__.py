"""Link to the portal: the remote protocol's envelope (``schema``), topics, and the MQTT 5 link
(``mqtt_link``, paho-mqtt). The WebSocket fallback is not built yet (README.md)."""
