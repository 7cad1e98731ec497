"""The ``ti`` target: Defender ATP's retired custom threat intelligence API (API.md §2)."""
