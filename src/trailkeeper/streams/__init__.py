"""Streams: push every event of a tenant's log to a destination, at least once, in log order.

Layers (import-linter holds them): `model` (what a stream is, its destination settings and
filters; plain data, beside `trailkeeper.model`), `payloads` (an Event to each destination's
wire format), `destinations` (the HTTP and NATS senders: infrastructure, beside `store`) and
`delivery` (the background job inside `serve`, above the service). See docs/streams.md.
"""
