"""POST /api/leads (create) and PATCH /api/leads (update): auth -> body -> check -> store."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from leads_api.api.auth import key_from_headers, store_caller
from leads_api.api.body import json_object, read_body
from leads_api.api.envelope import success
from leads_api.errors import ValidationError
from leads_api.lead import new_lead_id
from leads_api.lead_input import lead_change, new_lead_columns
from leads_api.store import Store
from leads_api.store.lead_writes import (
    Answer,
    IdempotencyKey,
    body_hash,
    create_appends_only,
    create_lead,
    update_leads,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# Set on an answer that repeats the stored first answer to an Idempotency-Key.
REPLAYED_HEADER = "Idempotent-Replayed"


async def create_lead_endpoint(request: Request) -> Response:
    store: Store = request.app.state.store
    key = key_from_headers(request)
    idempotency_header = request.headers.get(IDEMPOTENCY_HEADER)
    body = await read_body(request)

    def work() -> Answer:
        # One worker thread for the key, the body and the write: a hop between the event
        # loop and a thread fewer per write than a key checked by a hop of its own. The
        # order of the answers stays: the key (401, 403) before anything the body holds.
        caller = store_caller(store, key, writes=True)
        given_key = idempotency_key(idempotency_header)
        parsed = json_object(body)
        lead_id = new_lead_id()
        columns = {**new_lead_columns(parsed), "id": lead_id}
        first = Answer(201, {"id": lead_id, "message": "Lead added"})
        idempotency = None if given_key is None else IdempotencyKey(given_key, body_hash(parsed))
        appends_only = create_appends_only(caller.org, idempotency)
        with store.write(org_id=caller.org.id, append_only=appends_only) as conn:
            return create_lead(
                conn, org_id=caller.org.id, columns=columns, answer=first,
                idempotency=idempotency, known=caller.org,
            )

    answer = await run_in_threadpool(work)
    headers = {REPLAYED_HEADER: "true"} if answer.replayed else None
    return success(request, answer.data, status=answer.status, headers=headers)


async def update_leads_endpoint(request: Request) -> Response:
    store: Store = request.app.state.store
    key = key_from_headers(request)
    body = await read_body(request)

    def work() -> list[str]:
        caller = store_caller(store, key, writes=True)  # as for a create: one hop
        change = lead_change(json_object(body))
        with store.write(org_id=caller.org.id) as conn:
            return update_leads(
                conn,
                org_id=caller.org.id,
                change=change,
                allow_bulk=caller.org.allow_bulk_updates,
            )

    ids = await run_in_threadpool(work)
    return success(
        request,
        {
            "leadId": ids[0],
            "leadIds": ids,
            "leadsUpdated": len(ids),
            "message": "Lead updated successfully",
        },
    )


def idempotency_key(raw: str | None) -> str | None:
    """The optional Idempotency-Key header's value: 1 to 255 characters once trimmed, no NUL."""
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or "\x00" in key:
        raise ValidationError(
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            parameter=IDEMPOTENCY_HEADER,
        )
    return key
