package dashboards_test

import (
	"strings"
	"testing"
	"time"
)

// TestExpand: the expansion the panel test relies on gives what the
// ClickHouse data source's pkg/macros gives, and refuses what Grafana
// would not expand.
func TestExpand(t *testing.T) {
	g := grafanaQuery{From: time.Unix(1700000000, 0), To: time.Unix(1700003600, 500e6), Interval: 30 * time.Second,
		Vars: map[string]string{"model": "iris"}}
	for _, tc := range []struct{ in, want string }{
		{"$__timeFilter(time)", "time >= toDateTime(1700000000) AND time <= toDateTime(1700003600)"},
		{"$__timeFilter_ms(t)", "t >= fromUnixTimestamp64Milli(1700000000000) AND t <= fromUnixTimestamp64Milli(1700003600500)"},
		{"$__timeInterval(created)", "toStartOfInterval(toDateTime(created), INTERVAL 30 second)"},
		{"$__fromTime, $__toTime", "toDateTime(1700000000), toDateTime(1700003600)"},
		{"$__fromTime_ms", "fromUnixTimestamp64Milli(1700000000000)"},
		{"x / $__interval_s", "x / 30"},
		{"model = '${model}' OR model = '$model' OR model IN (${model:singlequote})", "model = 'iris' OR model = 'iris' OR model IN ('iris')"},
	} {
		got, err := g.Expand(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"$__timeFilter()", "$__timeFilter(a, b)", "$__nope", "${other}", "${model:csv}", "$__timeInterval"} {
		if got, err := g.Expand(bad); err == nil {
			t.Errorf("Expand(%q) = %q, want an error", bad, got)
		}
	}
	// The interval is at least one second, as in the plugin.
	g.Interval = 10 * time.Millisecond
	if got, _ := g.Expand("$__interval_s"); got != "1" {
		t.Errorf("$__interval_s with a 10ms interval = %q, want 1", got)
	}
	if got, err := g.Expand("a $ b"); err == nil || strings.Contains(got, "$") {
		t.Errorf("a lone $ passed: %q, %v", got, err)
	}
}
