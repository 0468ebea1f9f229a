"""Per-generation call metrics: calls, errors, latency p50/p95 (JSON and Prometheus text).

A call is one proxied call (or one `pin()` block); an error is a call that raised.
Latency quantiles come from the last `WINDOW` calls, so they follow the current
traffic rather than the generation's whole life.
"""

import threading
from collections import deque
from typing import Any, Dict, List, Optional

WINDOW = 2048


class CallStats:
    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self._latencies: "deque[float]" = deque(maxlen=WINDOW)
        self._lock = threading.Lock()

    def record(self, seconds: float, failed: bool) -> None:
        with self._lock:
            self.calls += 1
            if failed:
                self.errors += 1
            self._latencies.append(seconds)

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            calls, errors, samples = self.calls, self.errors, sorted(self._latencies)
        return {
            "calls": calls,
            "errors": errors,
            "error_rate": (errors / calls) if calls else 0.0,
            "p50_ms": _quantile_ms(samples, 0.50),
            "p95_ms": _quantile_ms(samples, 0.95),
        }


def _quantile_ms(sorted_samples: List[float], q: float) -> Optional[float]:
    """Nearest-rank quantile in milliseconds; None without samples."""
    if not sorted_samples:
        return None
    rank = max(1, -(-int(q * len(sorted_samples) * 1000) // 1000))  # ceil(q * n), at least 1
    return round(sorted_samples[min(rank, len(sorted_samples)) - 1] * 1000, 3)


def prometheus_text(rows: List[Dict[str, Any]]) -> str:
    """rows: the `generations` of the metrics JSON. Text exposition format 0.0.4."""
    out = [
        "# HELP hotreload_calls_total Proxied calls served by a generation.",
        "# TYPE hotreload_calls_total counter",
    ]
    out += ["hotreload_calls_total{%s} %d" % (_labels(r), r["calls"]) for r in rows]
    out += [
        "# HELP hotreload_call_errors_total Proxied calls that raised, per generation.",
        "# TYPE hotreload_call_errors_total counter",
    ]
    out += ["hotreload_call_errors_total{%s} %d" % (_labels(r), r["errors"]) for r in rows]
    out += [
        "# HELP hotreload_call_duration_seconds Call latency over the last %d calls." % WINDOW,
        "# TYPE hotreload_call_duration_seconds summary",
    ]
    for r in rows:
        for q, key in (("0.5", "p50_ms"), ("0.95", "p95_ms")):
            value = "NaN" if r[key] is None else repr(r[key] / 1000)
            out.append('hotreload_call_duration_seconds{%s,quantile="%s"} %s' % (_labels(r), q, value))
        out.append("hotreload_call_duration_seconds_count{%s} %d" % (_labels(r), r["calls"]))
    out += [
        "# HELP hotreload_canary_percent Share of proxied calls routed to the canary generation.",
        "# TYPE hotreload_canary_percent gauge",
    ]
    canary = [r for r in rows if r["role"] == "canary"]
    out.append("hotreload_canary_percent %d" % (canary[0]["percent"] if canary else 0))
    return "\n".join(out) + "\n"


def _labels(row: Dict[str, Any]) -> str:
    return 'generation="%d",version="%s",role="%s"' % (row["generation"], _escape(row["version"]), row["role"])


def _escape(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
