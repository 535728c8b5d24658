"""Protected-document fingerprinting: keyed robust winnowing over normalised k-grams."""

from gateway.fingerprint.detector import ENTITY_TYPE, FingerprintDetector
from gateway.fingerprint.fingerprints import Settings
from gateway.fingerprint.index import FingerprintIndex
from gateway.fingerprint.records import DocumentInfo, DocumentMatch
from gateway.fingerprint.sources import PathScan, SkippedFile, mode_for, scan_paths
from gateway.fingerprint.store import FingerprintStore, SQLiteFingerprintStore

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
