"""kpr-mottak: KPR's receiving service for IPLOS messages over the Norwegian health network."""

__version__ = "0.1.0"
