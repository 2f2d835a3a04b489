"""Bridges to the tools a store already runs: Home Assistant (MQTT discovery) and, in
time, others. Each module is a pure core (time passed in) and a thin MQTT shell; each is
one ``floorwalker`` command. See docs/homeassistant.md."""
