"""The kernel every app may import: errors, the Kubernetes client, names, time, Events,
Leases, counters and schedules. It imports no app (see .importlinter)."""
