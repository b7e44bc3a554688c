"""``/v1/live``: server-sent events of stored readings and alerts, fed from MQTT by :mod:`..live`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import StreamingResponse

from ..deps import OptTownDep
from ..errors import ApiError
from ..limits import HeldStreamingResponse, Streams, client_key
from ..live import LiveHub

router = APIRouter(prefix="/v1", tags=["live"])

_DESCRIPTION = """
A `text/event-stream` (server-sent events) that stays open. Events:

* `hello`: sent first: `mqtt_connected`, `coalesce_s`, `last_alert_id`, `server_time`.
* `reading`: `{town, sensor, time, ts, temperature, humidity, battery_v, battery_pct, rssi, source}`, a reading the
  ingester stored (whatever the sensor's payload format: `source` is `json`, `senml` or `tts`), at most one
  per sensor every `coalesce_s` seconds, always the newest value, never older than one already sent. On
  connection, the newest reading of every sensor heard since the server started. Readings carry no event id.
* `alert`: an alert event published on `heat/alerts/<town>` as it was published (`event` is `open` or
  `close`: a `close` ends the open alert of the same `sensor` and `kind`), never coalesced, with an
  increasing `id`. A client reconnecting with the `Last-Event-ID` header (browsers' `EventSource` do it by
  themselves) first receives every alert it missed that the server still holds.
* `gap`: alerts after the given id may be lost (server restarted or buffer overflowed): refetch open alerts.
* `status`: the server's MQTT connection went up or down (`mqtt_connected`).

Comment lines (`: ping`) keep the connection alive. The stream never ends by itself: HTTP clients that
are not browsers should read it incrementally.
"""


def _last_id(value: str | None) -> int | None:
    # Browsers send back whatever id they last saw; anything else is treated as "no id", not an error,
    # so a proxy or an old client mangling it cannot break the reconnection loop.
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) <= 19 else None


@router.get(
    "/live",
    summary="Live readings and alerts (server-sent events)",
    description=_DESCRIPTION,
    # Out of the OpenAPI document: generated clients and schema fuzzers cannot consume an endless
    # stream (each call would hang until its timeout). The API description in app.py names it instead.
    include_in_schema=False,
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an endless event stream"},
               404: {"description": "unknown town"}, 429: {"description": "this client has its streams open"},
               503: {"description": "live stream disabled on this server, or at capacity"}},
)
async def live(
    request: Request,
    town: OptTownDep = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64, description=(
        "sent by a reconnecting EventSource: the id of the last alert received"))] = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=2**62, description=(
        "replay buffered alerts after this id on first connection (0: all buffered alerts); the "
        "Last-Event-ID header of a reconnecting browser takes precedence"))] = None,
) -> StreamingResponse:
    hub: LiveHub | None = getattr(request.app.state, "live", None)
    if hub is None or not hub.config.enabled:
        raise ApiError(503, "live_unavailable", "the live stream is not enabled on this server",
                       {"Retry-After": "60"})
    resume = _last_id(last_event_id_header)
    if resume is None:
        resume = last_event_id
    # Each open stream holds a socket, a queue and a task: capped in total (503) and per client (429).
    streams: Streams = request.app.state.streams
    ticket = streams.acquire(client_key(request.scope))
    return HeldStreamingResponse(
        hub.stream(town.id if town else None, resume),
        ticket,
        media_type="text/event-stream",
        # no-transform and X-Accel-Buffering: proxies (nginx) must neither buffer nor compress the stream.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )
