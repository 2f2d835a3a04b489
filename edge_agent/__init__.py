"""The gateway side: sensing in a store section, publishing contract events over MQTT.

Camera footfall and BLE presence come in their own modules; :mod:`edge_agent.publisher`
is the MQTT side every producer shares, and :mod:`edge_agent.agent` the gateway process.
"""
