"""BLE on the gateway: advert frames, sightings, RSSI smoothing, the scanner, rotating ids."""
