"""The Circuit Breakers dashboard (circuit-breakers.json)."""

from __future__ import annotations

from dashboards.model import CIRCUIT_MAPPINGS, RI, Panel, dashboard, zero_or


def circuit_breakers() -> dict[str, object]:
    state = "max by (component) (circuit_breaker_state)"
    open_share = "avg_over_time((circuit_breaker_state == bool 1)[{window}:])"
    panels = [
        Panel(
            "Circuit states",
            "State of each circuit over time: closed, open, half-open.",
            [(state, "{{component}}")],
            kind="state-timeline",
            width=24,
            defaults={"mappings": CIRCUIT_MAPPINGS},
            options={"showValue": "auto"},
        ),
        Panel(
            "Current state",
            "State of each circuit now.",
            [(state, "{{component}}")],
            kind="stat",
            width=8,
            defaults={"mappings": CIRCUIT_MAPPINGS},
            options={"colorMode": "background"},
        ),
        Panel(
            "Time open in the selected range",
            "Seconds each circuit spent open within the dashboard's time range.",
            [(f"sum by (component) ({open_share.format(window='$__range')}) * $__range_s", "{{component}}")],
            "s",
            kind="bargauge",
            width=8,
            options={"orientation": "horizontal", "displayMode": "basic"},
        ),
        Panel(
            "Open seconds per 5 minutes",
            "How long each circuit stayed open in each 5-minute window.",
            [(f"sum by (component) ({open_share.format(window='5m')}) * 300", "{{component}}")],
            "s",
            width=8,
        ),
        Panel(
            "Transitions over time",
            "State transitions per interval.",
            [
                (
                    zero_or(
                        "sum by (component, from_state, to_state) "
                        f"(increase(circuit_breaker_transitions_total[{RI}]))",
                        "sum by (component) (circuit_breaker_state)",
                        "component",
                    ),
                    "{{component}} {{from_state}} -> {{to_state}}",
                )
            ],
        ),
        Panel(
            "Failures counted",
            "Failures counted by each circuit, per second.",
            [
                (
                    zero_or(
                        f"sum by (component) (rate(circuit_breaker_failures_total[{RI}]))",
                        "sum by (component) (circuit_breaker_state)",
                        "component",
                    ),
                    "{{component}}",
                )
            ],
            "ops",
        ),
    ]
    return dashboard(
        "cryptostock-circuit-breakers",
        "cryptostock / Circuit Breakers",
        "Circuit breakers guarding the database, Redis and exchange REST calls.",
        panels,
    )
