"""The HTTP face of the pipeline: read the request, protect it, forward it,
stream the response back, and write one audit record whatever happens."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import aiohttp
from aiohttp import web

from gateway.audit import AuditLog, AuditRecord
from gateway.audit.ledger import ExposureLedger, RequestMeta, exposures_from
from gateway.audit.sinks import SinkHub
from gateway.budgets import Budgets
from gateway.config import Settings
from gateway.detection.engine import DetectionEngine
from gateway.headers import CALLER_HEADER, request_headers, response_headers
from gateway.keys import KeyProvider
from gateway.pipeline import Outbound, Protected, Refused, protect
from gateway.respond import FINISH, finish_then_eof, relay_restored, restorable_kind
from gateway.reversible.restore import Restorer
from gateway.payload.sendbody import request_data
from gateway.routing import RouteError, check_path, split_route, upstream_url
from gateway.reversible.vault import TokenVault

log = logging.getLogger("vendorgate.proxy")
_CALLER = re.compile(r"[^A-Za-z0-9_.:@/-]")


class BodyTooLarge(Exception):
    pass


@dataclass
class Gateway:
    settings: Settings
    engine: DetectionEngine
    keys: KeyProvider
    audit: AuditLog
    session: aiohttp.ClientSession
    ledger: ExposureLedger | None = None
    sinks: SinkHub | None = None
    vault: TokenVault | None = None
    budgets: Budgets | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        record = AuditRecord(
            id=uuid.uuid4().hex, ts=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            request_id=request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex,
            caller=_CALLER.sub("_", request.headers.get(CALLER_HEADER, "anonymous"))[:128],
            vendor="", method=request.method, path="", decision="error", status=500,
        )
        written = False

        async def finish(response: web.StreamResponse | None) -> None:
            nonlocal written
            if written:
                return
            written = True
            record.duration_ms = round((time.perf_counter() - started) * 1000, 2)
            if response is not None:
                record.status = response.status
            await self.audit.append(record)
            if self.sinks is not None:
                await self.sinks.publish(record.to_dict())
            log.info("request %s caller=%s vendor=%s %s decision=%s status=%s findings=%s",
                     record.request_id, record.caller, record.vendor or "-", record.method,
                     record.decision, record.status, sum(record.findings.values()))

        request[FINISH] = finish
        response: web.StreamResponse | None = None
        try:
            response = await self._handle(request, record)
            return response
        finally:
            await finish(response)

    async def _handle(self, request: web.Request, record: AuditRecord) -> web.StreamResponse:
        try:
            vendor_name, rest = split_route(request.raw_path)
        except RouteError as exc:
            return self._error(record, exc.status, str(exc))
        vendor = self.settings.config.vendors.get(vendor_name)
        if vendor is None:
            record.path = "/"
            return self._error(record, 404, f"unknown vendor {vendor_name[:64]!r}; configured: "
                               + ", ".join(sorted(self.settings.config.vendors)), decision="rejected")
        record.vendor = vendor_name
        record.path = audit_path(rest)
        policy = self.settings.policies[vendor_name]
        record.policy_digest = policy.digest
        try:
            check_path(rest)
            body = await _read_body(request, vendor.max_body_bytes)
        except RouteError as exc:
            return self._error(record, exc.status, str(exc), decision="rejected")
        except BodyTooLarge:
            return self._error(record, 413, f"request body exceeds {vendor.max_body_bytes} bytes", decision="rejected")

        out = Outbound(vendor=vendor_name, path=rest, query=request.query_string, body=body,
                       content_type=request.headers.get("Content-Type", ""),
                       content_encoding=request.headers.get("Content-Encoding", ""))
        result = await protect(out, policy, self.engine, self.keys, vendor.max_body_bytes, self.vault,
                               data_dir=self.settings.data_dir, budgets=self.budgets,
                               fingerprints=self.settings.config.fingerprints)
        if isinstance(result, Refused):
            if result.decision is not None:
                record.findings = dict(result.decision.findings)
            record.blocked_types = result.entity_types
            decision = "blocked" if result.status in (403, 415) else ("error" if result.status >= 500 else "rejected")
            return self._error(record, result.status, result.error, decision=decision, entity_types=result.entity_types)

        record.findings = dict(result.decision.findings)
        record.actions = dict(result.decision.actions)
        record.unscanned_parts = result.unscanned_parts
        return await self._forward(request, vendor, result, record, self._restorer(vendor_name, policy, result))

    def _restorer(self, vendor_name: str, policy, protected: Protected) -> Restorer | None:
        """None when the policy issues nothing reversible: the response passes through as is."""
        if self.vault is None or not policy.reversible_types:
            return None
        return Restorer(vendor_name, self.vault, never_restore=policy.never_restore, known=protected.issued,
                        caller_literals=protected.caller_literals, entity_types=policy.reversible_types,
                        keys=self.keys)

    async def _forward(self, request: web.Request, vendor, protected: Protected, record: AuditRecord,
                       restorer: Restorer | None = None) -> web.StreamResponse:
        url = upstream_url(vendor.upstream, protected.path, protected.query)
        headers = request_headers(request.headers, vendor.credential)
        if restorer is not None:
            headers["Accept-Encoding"] = "identity"  # we restore the body, so we must read it
        if protected.body:
            headers["Content-Length"] = str(len(protected.body))
        timeout = aiohttp.ClientTimeout(total=None, connect=min(10.0, vendor.timeout_seconds),
                                        sock_read=vendor.timeout_seconds)
        try:
            upstream = await self.session.request(
                request.method, url, headers=headers, data=request_data(protected.body),
                allow_redirects=False, timeout=timeout, auto_decompress=False,
            )
        except asyncio.TimeoutError:
            await self._note_exposure(record, protected)
            return self._error(record, 504, "vendor did not answer in time", decision="error")
        except aiohttp.ClientConnectorError as exc:
            return self._error(record, 502, f"vendor unreachable: {type(exc).__name__}", decision="error")
        except aiohttp.ClientError as exc:
            await self._note_exposure(record, protected)
            return self._error(record, 502, f"vendor unreachable: {type(exc).__name__}", decision="error")
        await self._note_exposure(record, protected)
        record.bytes_sent = len(protected.body)
        record.upstream_status = upstream.status
        record.decision = "forwarded"
        async with upstream:
            kind = restorer and restorable_kind(request.method, upstream.status, upstream.headers)
            if kind == "json":
                try:
                    return await relay_restored(request, upstream, response_headers(upstream.headers),
                                                restorer, kind, record)
                except Exception as exc:  # nothing was sent yet: answer with an error instead
                    return self._error(record, 502, f"vendor response could not be restored: {type(exc).__name__}",
                                       decision="error")
            if kind:
                return await relay_restored(request, upstream, response_headers(upstream.headers), restorer, kind, record)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                          headers=response_headers(upstream.headers))
            response.headers["X-Vendorgate-Request-Id"] = record.request_id
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    record.bytes_received += len(chunk)
                    await response.write(chunk)
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                record.error = f"upstream response interrupted: {type(exc).__name__}"
                return response
            await finish_then_eof(request, response)
        return response

    async def _note_exposure(self, record: AuditRecord, protected: Protected) -> None:
        """Ledger rows for what the vendor may have received (not written when it could not be reached)."""
        if self.ledger is None:
            return
        meta = RequestMeta(record.ts, record.request_id, record.id, record.caller, record.vendor)
        try:
            await self.ledger.add(meta, exposures_from(protected.seen))
        except Exception as exc:  # the request already went out; losing its ledger rows must be loud
            log.error("exposure ledger write failed for request %s: %s", record.request_id, type(exc).__name__)

    def _error(self, record: AuditRecord, status: int, message: str, decision: str = "error",
               entity_types: list[str] | None = None) -> web.Response:
        record.decision = decision
        record.error = message
        body = {"error": message, "request_id": record.request_id}
        if entity_types:
            body["entity_types"] = entity_types
        return web.json_response(body, status=status, headers={"X-Vendorgate-Request-Id": record.request_id})


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge()
    body = bytearray()  # grown in place: no second copy of a large body while joining
    async for chunk in request.content.iter_any():
        if len(body) + len(chunk) > limit:
            raise BodyTooLarge()
        body += chunk
    return body


_PLAIN_SEGMENT = re.compile(r"(?:v\d{1,2}|[A-Za-z_.-]{0,40})")


def audit_path(path: str) -> str:
    """The route for the audit log: no query string, and every segment that is
    not a plain word (ids, names, emails, numbers) shown as `<hidden>`."""
    return "/" + "/".join(s if _PLAIN_SEGMENT.fullmatch(s) else "<hidden>" for s in path.split("/"))
