"""Live checkout analytics: windowed aggregation of checkout.events, off the money path.

Pure logic lives in `facts`, `windows`, `metrics` and `alerts` (no faust, no I/O); `runtime`
is the thin faust-streaming app around it, built by infra/analytics_wiring.py (ADR 0018).
"""
