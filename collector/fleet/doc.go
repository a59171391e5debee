// Package fleet is the collector side of fleet control (docs/fleet.md):
// each model's desired state (what the agents that follow a collector
// serve), its history in ClickHouse, the change operations of the admin
// API (rollout, rollback, pin, unpin, canary, promote, abort, shadow and
// the automatic analysis), and the control channel the agents use
// (register, inventory, long-poll of their desired state).
//
// Revisions of a model's desired state are assigned by the model's ring
// owner under a per-model lock: a change that reaches another collector is
// forwarded to the owner with the caller's token, as the registry forwards
// commits. Every collector keeps the current desired states in memory,
// re-read from ClickHouse every second, so a long-poll on any collector
// wakes within about a second of a change made through any other.
package fleet
