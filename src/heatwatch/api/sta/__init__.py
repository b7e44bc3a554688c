"""OGC SensorThings API v1.1 (Sensing, read-only) at /sta/v1.1: docs/interop.md."""
