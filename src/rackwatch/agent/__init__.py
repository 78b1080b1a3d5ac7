"""`rackwatch agent`: collects a real machine's telemetry and pushes it to a rackwatch server.

- `runner`: the loop that collects every interval (`AgentLoop`).
- `buffer`: the disk buffer every collection goes through (`DiskBuffer`).
- `push`: the push to `POST /api/v1/ingest`, with retries (`Pusher`).
"""
