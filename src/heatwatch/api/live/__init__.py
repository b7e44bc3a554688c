"""The live stream behind ``/v1/live`` and the dashboard's live updates: MQTT in, server-sent events out.

* :mod:`.feed` — the MQTT subscriber: one plain, non-persistent paho client per api process on
  ``heatwatch/live/+`` (stored readings, from ingest) and ``heat/alerts/+`` (alert events, from
  analytics), parsing each message with the kernel's :mod:`heatwatch.core.topics` and handing it to
  the event loop;
* :mod:`.events` — what one stream receives: SSE events and a bounded per-client queue;
* :mod:`.hub` — the fan-out: per-sensor coalescing of readings, the alert ring buffer with
  ``Last-Event-ID`` replay, and the byte stream of each client.
"""

from .hub import LiveHub

__all__ = ["LiveHub"]
