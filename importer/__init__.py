"""ti-importer: push threat-intelligence indicators from feeds into Microsoft Defender."""

__version__ = "0.1.0"
