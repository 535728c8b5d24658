"""Detection: find sensitive spans in text. See `engine.DetectionEngine`."""

from gateway.detection.finding import Finding

__all__ = ["Finding"]
