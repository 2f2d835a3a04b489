"""The gateway side: sensing in a store section, publishing contract events over MQTT.

:mod:`edge_agent.publisher` is the MQTT side every producer shares, and
:mod:`edge_agent.agent` the gateway process. Camera footfall: :mod:`~edge_agent.camera.detector`
(ONNX person detectors), :mod:`~edge_agent.camera.tracker`, :mod:`~edge_agent.camera.line_counter`,
:mod:`~edge_agent.camera.zones` and :mod:`~edge_agent.camera.footfall` (the pure counting core, time
passed in), :mod:`~edge_agent.camera.source` (frame sources) and :mod:`~edge_agent.camera.worker`
(the thin shell per camera), configured by :mod:`~edge_agent.gateway_config`. BLE presence
comes in its own modules.
"""
