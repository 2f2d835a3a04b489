"""Bridges to the tools a store already runs: Home Assistant (MQTT discovery) and
ESPresense receivers (as gateways). Each module is a pure core (time passed in) and a thin
MQTT shell; each is one ``floorwalker`` command. See docs/homeassistant.md and
docs/espresense.md."""
