"""vendorgate: a data-leakage gateway between your services and outside vendors."""

__version__ = "0.1.0"
