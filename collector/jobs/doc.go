// Package jobs schedules and runs re-optimization jobs: exactly one job per
// confirmed drift incident, executed by a command or a webhook, with its
// whole history in the ClickHouse table jobs.
//
// A job's id is derived from its incident (JobID), so every collector that
// sees the same incident computes the same id. The table is the only shared
// state: every change of a job inserts the whole row again with a higher
// row_version, and the row with the highest row_version is the job's state
// (ties: a non-running row first, then the lexicographically smallest
// lease_owner). A node runs a job only while it holds the job's lease
// (lease_owner, lease_until), which it renews every Lease/3; a node that
// finds a job whose lease lapsed takes it over (Manager.Resume).
//
// docs/jobs.md is the operator's reference: configuration, the contract for
// command and webhook authors, and the exactly-once argument with its
// remaining race window.
package jobs
