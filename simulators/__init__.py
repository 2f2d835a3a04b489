"""Simulators: scripted shoppers and the sensor traffic they cause, published through the
same contract and publisher code that real gateways and POS adapters use."""
