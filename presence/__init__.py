"""The BLE fuser process: gateway reports of rotating ids -> members' presence in zones."""
