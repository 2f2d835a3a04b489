"""Camera footfall on the gateway: frames -> detections -> tracks -> line crossings and zone counts."""
