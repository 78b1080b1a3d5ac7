"""`rackwatch agent`: collects a real machine's telemetry and pushes it to a rackwatch server.

- the collecting itself is `rackwatch.sources.host` (`CollectionLoop` and the collectors);
- `buffer`: the disk buffer every collection goes through (`DiskBuffer`).
- `push`: the push to `POST /api/v1/ingest`, with retries (`Pusher`).
"""
