"""Audit: one record per request, in a hash-chained log. See `store.AuditLog`."""

from gateway.audit.record import AuditRecord
from gateway.audit.store import AuditLog, VerifyResult

__all__ = ["AuditLog", "AuditRecord", "VerifyResult"]
