"""POST /api/leads (create) and PATCH /api/leads (update): auth -> body -> check -> store."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from leads_api.api.auth import request_caller
from leads_api.api.body import read_json_object
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
    caller = await request_caller(request, writes=True)
    key = idempotency_key(request)
    body = await read_json_object(request)
    lead_id = new_lead_id()
    columns = {**new_lead_columns(body), "id": lead_id}
    first = Answer(201, {"id": lead_id, "message": "Lead added"})
    idempotency = None if key is None else IdempotencyKey(key, body_hash(body))

    appends_only = create_appends_only(caller.org, idempotency)

    def work() -> Answer:
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
    caller = await request_caller(request, writes=True)
    change = lead_change(await read_json_object(request))

    def work() -> list[str]:
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


def idempotency_key(request: Request) -> str | None:
    """The optional Idempotency-Key header: 1 to 255 characters once trimmed, no NUL."""
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or "\x00" in key:
        raise ValidationError(
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            parameter=IDEMPOTENCY_HEADER,
        )
    return key
