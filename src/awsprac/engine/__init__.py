"""The engine: what every family and command shares (clients, context, lookup, shared reads, the plan
as data, reconcile helpers, runner and graph walk, lock, waits, report). It knows no family by name."""
