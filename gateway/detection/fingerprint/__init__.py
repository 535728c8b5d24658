"""Protected-document fingerprinting: keyed robust winnowing over normalised k-grams."""

from gateway.detection.fingerprint.detector import ENTITY_TYPE, FingerprintDetector
from gateway.detection.fingerprint.fingerprints import Settings
from gateway.detection.fingerprint.index import FingerprintIndex
from gateway.detection.fingerprint.records import DocumentInfo, DocumentMatch
from gateway.detection.fingerprint.sources import PathScan, SkippedFile, mode_for, scan_paths
from gateway.detection.fingerprint.store import FingerprintStore, SQLiteFingerprintStore

__all__ = [
    "ENTITY_TYPE",
    "DocumentInfo",
    "DocumentMatch",
    "FingerprintDetector",
    "FingerprintIndex",
    "FingerprintStore",
    "PathScan",
    "SQLiteFingerprintStore",
    "Settings",
    "SkippedFile",
    "mode_for",
    "scan_paths",
]
