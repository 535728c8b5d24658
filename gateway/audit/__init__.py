"""Audit: one record per request, as leaves of a Merkle tree with signed checkpoints. See `store.AuditLog`."""

from gateway.audit.record import AuditRecord
from gateway.audit.store import AuditLog, AuditLogError
from gateway.audit.verify import VerifyResult, verify_log

__all__ = ["AuditLog", "AuditLogError", "AuditRecord", "VerifyResult", "verify_log"]
