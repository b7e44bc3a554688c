"""One log format per process: heatwatch's structlog events and the libraries' records (uvicorn's access
and error logs, httpx...) alike, JSON lines with HEATWATCH_LOG_JSON."""

from __future__ import annotations

import json
import logging

import pytest

from heatwatch.core.logging import configure_logging, get_logger


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [x for x in capsys.readouterr().err.splitlines() if x.strip()]


def test_json_lines_for_every_logger(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    get_logger("heatwatch.ingest").info("spool.drained", depth=0)
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                                             "/v1/latest?town=vitre", "1.1", 200)
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        get_logger("heatwatch.analytics").exception("analytics.hourly.failed")
    get_logger("heatwatch.ingest").debug("not.shown")  # below the level
    logging.getLogger("httpx").info("not shown either")  # a chatty library, kept to warnings
    out = [json.loads(x) for x in lines(capsys)]
    assert [(o["logger"], o["event"], o["level"]) for o in out] == [
        ("heatwatch.ingest", "spool.drained", "info"),
        ("uvicorn.error", "Application startup complete.", "info"),
        ("uvicorn.access", "http.request", "info"),
        ("heatwatch.analytics", "analytics.hourly.failed", "error"),
    ]
    assert out[0]["depth"] == 0 and all(o["timestamp"].endswith("Z") for o in out)
    assert (out[2]["method"], out[2]["path"], out[2]["status"], out[2]["client"]) == (
        "GET", "/v1/latest?town=vitre", 200, "127.0.0.1:5000")
    assert "ZeroDivisionError: boom" in out[3]["exception"]


def test_key_value_lines_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", json=False)
    get_logger("heatwatch.analytics").info("recompute.connected", session_present=True)
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "10.0.0.1:1", "GET", "/healthz", "1.1", 200)
    first, second = lines(capsys)
    assert "recompute.connected" in first and "session_present=True" in first and "[heatwatch.analytics]" in first
    assert "http.request" in second and "path=/healthz" in second and "status=200" in second
    with pytest.raises(json.JSONDecodeError):
        json.loads(first)
