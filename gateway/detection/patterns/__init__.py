"""Fast pattern layer: regexes, checksums and context words for structured PII."""

from gateway.detection.patterns.custom import CustomPattern
from gateway.detection.patterns.detector import PatternDetector

__all__ = ["CustomPattern", "PatternDetector"]
