"""Benchmarks and evaluation harnesses. Product code never imports this package."""
