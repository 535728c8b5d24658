"""Vendors on loopback that speak the real wire formats and record what they received.

- `OpenAIVendor`: chat completions (text, refusal and tool-call deltas), the
  Responses API (message and function_call items, every event the API streams),
  and the Files API's batch output (`GET /v1/files/{id}/content`, JSON Lines as
  `application/octet-stream`, streamed in small chunks).
- `AnthropicVendor`: the Messages API, streamed with a thinking block, a text
  block and a tool_use block (`input_json_delta`), or as one JSON message; and
  Message Batches (create, retrieve with an absolute `results_url`, the results
  as JSON Lines).
- `LabelStudioVendor`: task import (`POST /api/projects/{id}/import`) and export
  (`GET /api/projects/{id}/export`: the tasks as imported, with their predictions
  accepted by the labeler as annotations), one task (`GET /api/tasks/{id}`), and
  the webhooks it posts (ANNOTATION_CREATED / _UPDATED, ANNOTATIONS_CREATED,
  TASKS_CREATED), built from the tasks it holds.
- `LabelboxVendor`: data rows as NDJSON or a JSON array (`row_data`, `global_key`,
  `external_id`, `attachments`, `metadata_fields`), annotation (MAL) NDJSON
  lines (`uuid`, `dataRow.globalKey`, `name`, `location`), and the project export as
  Labelbox's export NDJSON (`data_row`, `attachments`, `metadata_fields`,
  `projects.{id}.labels[*].annotations`), with the labeler's `TextEntity` objects
  (inclusive `end`, `token`) and a free-text classification quoting them. The
  bodies are Labelbox's; the URL paths are this loopback's own.

Every answer echoes what the vendor received, so a token the gateway put in the
request comes back in every field of the answer; strings are cut into
`chunk_size` pieces so tokens are split across events. When `gate` is set, a
stream pauses after its first text piece until the test releases it
(`finished` says whether the vendor sent its last byte).
"""

from __future__ import annotations

import asyncio
import email.policy
import json
from dataclasses import dataclass, field
from email.parser import BytesParser

import httpx
from aiohttp import web
from support import free_port


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


@dataclass
class Recording:
    url: str = ""
    received: list[dict] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    chunk_size: int = 5
    gate: asyncio.Event | None = None
    finished: bool = False
    runner: web.AppRunner | None = None

    @property
    def received_text(self) -> str:
        return "\n".join(r.decode("utf-8", "replace") for r in self.raw)

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self):
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        await self.runner.cleanup()

    async def record(self, request: web.Request) -> dict:
        raw = await request.read()
        self.raw.append(raw)
        body = json.loads(raw) if raw else {}
        self.received.append(body)
        return body

    async def wait_gate(self) -> None:
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), 20)


def file_part(raw: bytes, content_type: str) -> bytes:
    """The content of the one file part of a multipart/form-data body (parsed with the standard library)."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    [part] = [p for p in message.iter_parts() if p.get_filename()]
    return part.get_payload(decode=True)


def sse(event: dict, name: str | None = None) -> bytes:
    head = f"event: {name}\n" if name else ""
    return (head + "data: " + json.dumps(event) + "\n\n").encode()


def last_user_text(messages: list, key: str = "content") -> str:
    for m in reversed(messages):
        if m.get("role") != "user":
            continue
        content = m.get(key)
        if isinstance(content, str):
            return content
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


@dataclass
class OpenAIVendor(Recording):
    """`tool_args`: when set (a function of the user text), chat and responses answer
    with a tool call too. `refuse`: chat streams a refusal instead of content."""

    tool_args: object = None
    refuse: bool = False
    batch_output: bytes = b""

    def routes(self, app):
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        user = last_user_text(body["messages"])
        reply = f"Noted: {user}"
        args = json.dumps(self.tool_args(user)) if self.tool_args else None
        base = {"id": "chatcmpl-1", "created": 1700000000, "model": body["model"], "system_fingerprint": "fp_1"}
        if not body.get("stream"):
            message = {"role": "assistant", "content": reply, "refusal": None}
            if args:
                message["tool_calls"] = [{"id": "call_1", "type": "function",
                                          "function": {"name": "send_receipt", "arguments": args}}]
            return web.json_response({**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if args else "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(delta: dict, finish=None) -> None:
            chunk = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": "", "refusal": None})
        kind = "refusal" if self.refuse else "content"
        for n, part in enumerate(pieces(reply, self.chunk_size)):
            await send({kind: part})
            if n == 0:
                await self.wait_gate()
        if args:
            await send({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                        "function": {"name": "send_receipt", "arguments": ""}}]})
            for part in pieces(args, self.chunk_size):
                await send({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
        await send({}, "tool_calls" if args else "stop")
        await response.write(b"data: [DONE]\n\n")
        self.finished = True
        await response.write_eof()
        return response

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        given = body["input"]
        user = given if isinstance(given, str) else last_user_text(given)
        reply = f"Noted: {user}"
        args = json.dumps(self.tool_args(user)) if self.tool_args else None
        message = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": reply, "annotations": [], "logprobs": []}]}
        call = {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1",
                "name": "send_receipt", "arguments": args}
        output = [message] + ([call] if args else [])
        resp = {"id": "resp_1", "object": "response", "created_at": 1700000000, "status": "completed",
                "model": body["model"], "output": output, "parallel_tool_calls": True, "tool_choice": "auto",
                "tools": body.get("tools", []), "instructions": body.get("instructions"), "metadata": {},
                "error": None, "incomplete_details": None, "temperature": 1.0, "top_p": 1.0,
                "usage": {"input_tokens": 5, "output_tokens": 5, "total_tokens": 10,
                          "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}}
        if not body.get("stream"):
            return web.json_response(resp)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        seq = iter(range(10_000))

        async def send(event: dict) -> None:
            await response.write(sse({**event, "sequence_number": next(seq)}, event["type"]))

        await send({"type": "response.created", "response": {**resp, "status": "in_progress", "output": [],
                                                            "usage": None}})
        await send({"type": "response.in_progress", "response": {**resp, "status": "in_progress", "output": [],
                                                                "usage": None}})
        await send({"type": "response.output_item.added", "output_index": 0,
                    "item": {**message, "status": "in_progress", "content": []}})
        at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
        await send({"type": "response.content_part.added", **at,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        for n, part in enumerate(pieces(reply, self.chunk_size)):
            await send({"type": "response.output_text.delta", **at, "delta": part, "logprobs": []})
            if n == 0:
                await self.wait_gate()
        await send({"type": "response.output_text.done", **at, "text": reply, "logprobs": []})
        await send({"type": "response.content_part.done", **at, "part": message["content"][0]})
        await send({"type": "response.output_item.done", "output_index": 0, "item": message})
        if args:
            await send({"type": "response.output_item.added", "output_index": 1,
                        "item": {**call, "status": "in_progress", "arguments": ""}})
            for part in pieces(args, self.chunk_size):
                await send({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1,
                            "delta": part})
            await send({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 1,
                        "name": "send_receipt", "arguments": args})
            await send({"type": "response.output_item.done", "output_index": 1, "item": call})
        await send({"type": "response.completed", "response": resp})
        self.finished = True
        await response.write_eof()
        return response

    async def _file_content(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        first, _, rest = self.batch_output.partition(b"\n")
        await response.write(first + b"\n")
        await self.wait_gate()  # the first line is out; the rest waits for the test
        for part in pieces(rest.decode(), self.chunk_size * 7):
            await response.write(part.encode())
        self.finished = True
        await response.write_eof()
        return response


@dataclass
class AnthropicVendor(Recording):
    """Answers with a thinking block and a text block echoing the last user text, and,
    when `tool_input` is set (a function of that text), a tool_use block.

    Message Batches: `POST /v1/messages/batches` keeps the requests and answers with the
    batch `in_progress`; `GET /v1/messages/batches/{id}` answers it `ended`, with an absolute
    `results_url` on this vendor (or under `results_base`, another host); that URL serves the
    results as JSON Lines (`application/x-jsonl`, in small pieces): one `{"custom_id", "result"}`
    a request, `succeeded` with the message a request would get (a text block, a tool_use block),
    or the outcome `outcomes` names for its custom id (`errored`, `canceled`, `expired`); `gate`
    holds the file after its first line."""

    tool_input: object = None
    batches: dict[str, list[dict]] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    results_base: str | None = None
    downloads: list[dict] = field(default_factory=list)  # each results download: its path and headers

    def routes(self, app):
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/batches", self._create_batch)
        app.router.add_get("/v1/messages/batches/{bid}", self._batch)
        app.router.add_get("/v1/messages/batches/{bid}/results", self._results)

    def message(self, params: dict, thinking: bool = True) -> dict:
        user = last_user_text(params["messages"])
        reply, thought = f"Noted: {user}", f"The user wants: {user}"
        tool = self.tool_input(user) if self.tool_input else None
        blocks = [{"type": "thinking", "thinking": thought, "signature": "EqQBCkYIBRgCKkBsig"}] if thinking else []
        blocks.append({"type": "text", "text": reply, "citations": None})
        if tool is not None:
            blocks.append({"type": "tool_use", "id": "toolu_1", "name": "send_receipt", "input": tool})
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": params["model"], "content": blocks,
                "stop_reason": "tool_use" if tool is not None else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 20}}

    def batch(self, bid: str, ended: bool) -> dict:
        requests = self.batches[bid]
        counts = {"processing": 0 if ended else len(requests), "succeeded": 0, "errored": 0, "canceled": 0,
                  "expired": 0}
        if ended:
            for r in requests:
                counts[self.outcomes.get(r["custom_id"], "succeeded")] += 1
        base = self.results_base or self.url
        return {"id": bid, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": counts, "ended_at": "2026-01-01T00:10:00Z" if ended else None,
                "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-02T00:00:00Z", "archived_at": None,
                "cancel_initiated_at": None,
                "results_url": f"{base}/v1/messages/batches/{bid}/results" if ended else None}

    async def _create_batch(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        bid = f"msgbatch_01{len(self.batches):022d}"
        self.batches[bid] = body["requests"]
        return web.json_response(self.batch(bid, ended=False))

    async def _batch(self, request: web.Request) -> web.Response:
        bid = request.match_info["bid"]
        if bid not in self.batches:
            return web.json_response({"type": "error", "error": {"type": "not_found_error", "message": "Not found"}},
                                     status=404)
        return web.json_response(self.batch(bid, ended=True))

    def result(self, r: dict) -> dict:
        outcome = self.outcomes.get(r["custom_id"], "succeeded")
        if outcome == "succeeded":
            return {"type": "succeeded", "message": self.message(r["params"], thinking=False)}
        if outcome == "errored":
            return {"type": "errored", "error": {"type": "error", "request_id": "req_011errored", "error": {
                "type": "invalid_request_error", "message": "max_tokens: Input should be greater than 0"}}}
        return {"type": outcome}

    async def _results(self, request: web.Request) -> web.StreamResponse:
        self.downloads.append({"path": request.path, "headers": dict(request.headers)})
        response = web.StreamResponse(headers={
            "Content-Type": "application/x-jsonl",
            "Content-Disposition": f"attachment; filename*=utf-8''{request.match_info['bid']}_results.jsonl"})
        await response.prepare(request)
        lines = [json.dumps({"custom_id": r["custom_id"], "result": self.result(r)}) + "\n"
                 for r in self.batches[request.match_info["bid"]]]
        for n, line in enumerate(lines):
            for part in pieces(line, self.chunk_size * 7):
                await response.write(part.encode())
            if n == 0:
                await self.wait_gate()  # the first line is out; the rest waits for the test
        self.finished = True
        await response.write_eof()
        return response

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        user = last_user_text(body["messages"])
        thought = f"The user wants: {user}"
        tool = self.tool_input(user) if self.tool_input else None
        message = self.message(body)
        blocks = message["content"]
        reply = blocks[1]["text"]
        if not body.get("stream"):
            return web.json_response(message)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(event: dict) -> None:
            await response.write(sse(event, event["type"]))

        await send({"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                          "usage": {"input_tokens": 10, "output_tokens": 1}}})
        await send({"type": "ping"})
        await send({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
        for part in pieces(thought, self.chunk_size):
            await send({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": part}})
        await send({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "signature_delta", "signature": blocks[0]["signature"]}})
        await send({"type": "content_block_stop", "index": 0})
        await send({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}})
        for n, part in enumerate(pieces(reply, self.chunk_size)):
            await send({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": part}})
            if n == 0:
                await self.wait_gate()
        await send({"type": "content_block_stop", "index": 1})
        if tool is not None:
            await send({"type": "content_block_start", "index": 2,
                        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "send_receipt", "input": {}}})
            for part in pieces(json.dumps(tool), self.chunk_size):
                await send({"type": "content_block_delta", "index": 2,
                            "delta": {"type": "input_json_delta", "partial_json": part}})
            await send({"type": "content_block_stop", "index": 2})
        await send({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                    "usage": {"output_tokens": 20}})
        await send({"type": "message_stop"})
        self.finished = True
        await response.write_eof()
        return response


@dataclass
class LabelStudioVendor(Recording):
    """Keeps imported tasks per project and exports them with an annotation that quotes the task.
    Posts webhooks as Label Studio does (`webhooks/utils.py`: `requests.post(url, headers=<the
    webhook's headers>, json={"action": ..., **payload})`, each object a model serialised with all
    its fields): `annotation_event` for ANNOTATION_CREATED / ANNOTATION_UPDATED (one annotation and
    its task) and ANNOTATIONS_CREATED (lists of both), `tasks_event` for TASKS_CREATED."""

    tasks: dict[str, list[dict]] = field(default_factory=dict)

    def stored(self, pid: str) -> list[tuple[int, dict]]:
        """(task id, task) of a project's tasks; ids count the imported tasks of every project from 1."""
        everything = [(p, t) for p, tasks in self.tasks.items() for t in tasks]
        return [(n, t) for n, (p, t) in enumerate(everything, 1) if p == pid]

    def project(self, pid: str) -> dict:
        count = len(self.tasks.get(pid, []))
        return {"id": int(pid), "title": "Support tickets", "description": "", "label_config":
                '<View><Labels name="label" toName="text"><Label value="PERSON"/></Labels><Text name="text" '
                'value="$text"/><TextArea name="comment" toName="text"/></View>', "expert_instruction": "",
                "created_at": "2026-01-01T00:00:00.000000Z", "organization": 1, "task_number": count,
                "finished_task_number": 1, "total_predictions_number": count, "total_annotations_number": 1,
                "num_tasks_with_annotations": 1, "useful_annotation_number": 1, "ground_truth_number": 0,
                "skipped_annotations_number": 0}

    def task_model(self, tid: int, task: dict, pid: str) -> dict:
        return {"id": tid, "data": task["data"], "meta": task.get("meta", {}), "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:05:00Z", "is_labeled": True, "overlap": 1, "inner_id": tid,
                "total_annotations": 1, "cancelled_annotations": 0, "total_predictions": len(task.get("predictions", [])),
                "comment_count": 0, "unresolved_comment_count": 0, "last_comment_updated_at": None,
                "project": int(pid), "updated_by": 1, "file_upload": None, "comment_authors": []}

    def annotation_model(self, aid: int, tid: int, result: list[dict], pid: str) -> dict:
        return {"id": aid, "result": result, "was_cancelled": False, "ground_truth": False,
                "created_at": "2026-01-01T00:05:00Z", "updated_at": "2026-01-01T00:05:00Z", "draft_created_at": None,
                "lead_time": 42.5, "import_id": None, "last_action": None, "task": tid, "project": int(pid),
                "completed_by": 1, "updated_by": 1, "parent_prediction": None, "parent_annotation": None,
                "last_created_by": None, "unique_id": f"5d2f{aid:04d}-annotation", "bulk_created": False}

    def annotation_event(self, pid: str, labeled: dict[int, list[dict]], action: str = "ANNOTATION_CREATED") -> dict:
        """The labeler's `result` per task id; one task for ANNOTATION_CREATED / _UPDATED, lists otherwise."""
        by_id = dict(self.stored(pid))
        tasks = [self.task_model(tid, by_id[tid], pid) for tid in labeled]
        made = [self.annotation_model(100 + tid, tid, result, pid) for tid, result in labeled.items()]
        many = action == "ANNOTATIONS_CREATED"
        return {"action": action, "annotation": made if many else made[0], "project": self.project(pid),
                "task": tasks if many else tasks[0]}

    def tasks_event(self, pid: str) -> dict:
        return {"action": "TASKS_CREATED", "tasks": [self.task_model(tid, t, pid) for tid, t in self.stored(pid)],
                "project": self.project(pid)}

    async def post_webhook(self, url: str, event: dict, headers: dict | None = None):
        """The POST Label Studio makes: JSON, with the headers configured on the webhook."""
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(url, json=event, headers=headers or {})

    def routes(self, app):
        app.router.add_post("/api/projects/{pid}/import", self._import)
        app.router.add_get("/api/projects/{pid}/export", self._export)
        app.router.add_get("/api/tasks/{tid}", self._task)

    async def _import(self, request: web.Request) -> web.Response:
        """A JSON body (a task list or one task), JSON Lines, or a file upload (multipart) of either."""
        if request.content_type == "multipart/form-data":
            raw = await request.read()
            self.raw.append(raw)
            content = file_part(raw, request.headers["Content-Type"])
        else:
            content = await request.read()
            self.raw.append(content)
        text = content.decode()
        try:
            body = json.loads(text)
        except ValueError:
            body = [json.loads(line) for line in text.splitlines() if line.strip()]
        self.received.append(body)
        tasks = body if isinstance(body, list) else [body]
        self.tasks.setdefault(request.match_info["pid"], []).extend(tasks)
        return web.json_response({"task_count": len(tasks), "annotation_count": 0, "prediction_count": 0,
                                  "duration": 0.01, "file_upload_ids": [], "could_be_tasks_list": False,
                                  "found_formats": [], "data_columns": []}, status=201)

    async def _task(self, request: web.Request) -> web.Response:
        """One task by id (ids count the imported tasks of every project from 1), as the export has it."""
        everything = [t for tasks in self.tasks.values() for t in tasks]
        tid = int(request.match_info["tid"])
        if not 1 <= tid <= len(everything):
            return web.json_response({"detail": "Not found.", "status_code": 404}, status=404)
        return web.json_response({"id": tid, **everything[tid - 1], "annotations": []})

    async def _export(self, request: web.Request) -> web.Response:
        """Each task as Label Studio exports it: its data, its predictions, and an annotation in which the
        labeler marked the whole text as a complaint and accepted the predicted spans."""
        out = []
        for n, task in enumerate(self.tasks.get(request.match_info["pid"], []), 1):
            text = task["data"].get("text", "")
            predicted = [r for p in task.get("predictions", []) for r in p.get("result", [])]
            out.append({"id": n, "data": task["data"], "meta": task.get("meta", {}),
                        "predictions": task.get("predictions", []), "annotations": [{
                "id": n, "completed_by": 1, "result": [{"from_name": "label", "to_name": "text", "type": "labels",
                                                        "value": {"start": 0, "end": len(text), "text": text,
                                                                  "labels": ["Complaint"]}}, *predicted]}]})
        return web.Response(body=json.dumps(out).encode(), content_type="application/json",
                            headers={"Content-Disposition": 'attachment; filename="project-1-export.json"'})


@dataclass
class LabelboxVendor(Recording):
    """Keeps data rows per dataset; its labeler marks, in each text row, the spans `labeler(text)` returns
    (as `person` text entities) and writes a free-text classification quoting the first one."""

    rows: dict[str, list[dict]] = field(default_factory=dict)
    labeler: object = None

    def routes(self, app):
        app.router.add_post("/v1/datasets/{did}/data-rows", self._import)
        app.router.add_post("/v1/projects/{pid}/annotations", self._annotations)
        app.router.add_get("/v1/datasets/{did}/export", self._export)

    async def record(self, request: web.Request):
        raw = await request.read()
        self.raw.append(raw)
        text = raw.decode()
        body = json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines()
                                                                      if line.strip()]
        self.received.append(body)
        return body

    async def _import(self, request: web.Request) -> web.Response:
        rows = await self.record(request)
        self.rows.setdefault(request.match_info["did"], []).extend(rows)
        return web.json_response({"data": {"createDataRows": {"id": "task-1", "status": "COMPLETE",
                                                              "createdCount": len(rows)}}})

    async def _annotations(self, request: web.Request) -> web.Response:
        """A model-assisted labeling import: NDJSON annotation lines naming their data row."""
        lines = await self.record(request)
        return web.json_response({"data": {"createModelAssistedLabelingPredictionImport": {
            "id": "mal-1", "state": "FINISHED", "count": len(lines)}}})

    async def _export(self, request: web.Request) -> web.StreamResponse:
        """Labelbox's export NDJSON, one data row a line, streamed in small pieces."""
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for n, row in enumerate(self.rows.get(request.match_info["did"], []), 1):
            text = row["row_data"]
            spans = list(self.labeler(text)) if self.labeler else []
            objects = [{"feature_id": f"ftr{n}-{k}", "feature_schema_id": "cl-person", "name": "person",
                        "value": "person", "annotation_kind": "TextEntity", "classifications": [],
                        "location": {"start": s, "end": e - 1, "token": text[s:e]}} for k, (s, e) in enumerate(spans)]
            answer = f"Caller is {text[spans[0][0]:spans[0][1]]}" if spans else "no caller"
            line = {
                "data_row": {"id": f"ckrow{n}", "global_key": row.get("global_key"), "external_id": row.get("external_id"),
                             "row_data": text, "details": {"dataset_id": request.match_info["did"],
                                                           "created_at": "2026-01-01T00:00:00.000+00:00"}},
                "media_attributes": {"mime_type": "text/plain", "asset_type": "text"},
                "attachments": row.get("attachments", []),
                "metadata_fields": [{**m, "schema_name": m.get("name", "tag")} for m in row.get("metadata_fields", [])],
                "projects": {"cl-project-1": {"name": "Tickets", "labels": [{
                    "id": f"cl-label-{n}", "label_kind": "Default", "version": 1,
                    "label_details": {"created_by": "labeler@vendor.example"},
                    "annotations": {"objects": objects, "relationships": [], "classifications": [{
                        "feature_id": f"cls{n}", "feature_schema_id": "cl-summary", "name": "summary",
                        "value": "summary", "text_answer": {"content": answer}}]}}]}},
            }
            for part in pieces(json.dumps(line) + "\n", self.chunk_size * 13):
                await response.write(part.encode())
        await response.write_eof()
        return response
