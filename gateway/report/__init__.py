"""Exposure reports: what each vendor saw over a time window, as HTML, JSON and CSV."""

from gateway.report.data import collect, parse_since, vendor_summary

__all__ = ["collect", "parse_since", "vendor_summary"]
