// Package dashboards holds Drover's Grafana dashboards as JSON, generated
// by the program in gen/ (dashboards as code, with the Grafana Foundation
// SDK) on the ClickHouse data source that deploy/grafana provisions. Run
// `go generate ./dashboards` after changing gen/; a test fails while the
// checked-in JSON differs from what gen/ builds, and another runs every
// panel's query against the real engine.
package dashboards

//go:generate go run ./gen -out .
