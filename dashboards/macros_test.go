package dashboards_test

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// grafanaQuery is what Grafana and the ClickHouse data source do to a
// panel's rawSql before it reaches ClickHouse: the dashboard's template
// variables are replaced (Grafana), then the plugin's macros (its
// pkg/macros: $__timeFilter(col), $__timeInterval(col), $__fromTime, ...).
type grafanaQuery struct {
	From, To time.Time
	// Interval is the panel's interval ($__interval_s).
	Interval time.Duration
	// Vars are the template variables' current values.
	Vars map[string]string
}

var (
	// ${name}, ${name:format} and $name (a Grafana variable); $__ names
	// are macros, replaced afterwards.
	varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}|\$([A-Za-z][A-Za-z0-9_]*)`)
	// $__name or $__name(args): the plugin's macro syntax.
	macroRE = regexp.MustCompile(`\$__([A-Za-z_]+)(?:\(([^)]*)\))?`)
)

// Expand returns sql as ClickHouse receives it, or an error naming the
// variable or macro it cannot expand (a typo in a dashboard fails the test
// instead of reaching Grafana).
func (g grafanaQuery) Expand(sql string) (string, error) {
	var errs []string
	sql = varRE.ReplaceAllStringFunc(sql, func(m string) string {
		sub := varRE.FindStringSubmatch(m)
		name, format := sub[1], sub[2]
		if name == "" {
			name = sub[3]
		}
		v, ok := g.Vars[name]
		if !ok {
			errs = append(errs, "unknown variable "+m)
			return m
		}
		switch format {
		case "", "raw":
			return v
		case "singlequote":
			return "'" + strings.ReplaceAll(v, "'", `\'`) + "'"
		default:
			errs = append(errs, "unknown variable format "+m)
			return m
		}
	})
	sql = macroRE.ReplaceAllStringFunc(sql, func(m string) string {
		sub := macroRE.FindStringSubmatch(m)
		out, err := g.macro(sub[1], sub[2], strings.Contains(m, "("))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", m, err))
			return m
		}
		return out
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("expand: %s", strings.Join(errs, "; "))
	}
	if strings.Contains(sql, "$") {
		return "", fmt.Errorf("expand: a $ is left in %q", sql)
	}
	return sql, nil
}

// macro expands one macro as grafana/clickhouse-datasource's pkg/macros
// does (times as UTC seconds or milliseconds).
func (g grafanaQuery) macro(name, arg string, hasArgs bool) (string, error) {
	dt := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	dt64 := func(t time.Time) string { return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli()) }
	col := strings.TrimSpace(arg)
	needCol := func() error {
		if !hasArgs || col == "" || strings.Contains(col, ",") {
			return fmt.Errorf("want one argument")
		}
		return nil
	}
	seconds := int(math.Max(g.Interval.Seconds(), 1))
	switch name {
	case "fromTime":
		return dt(g.From), nil
	case "toTime":
		return dt(g.To), nil
	case "fromTime_ms":
		return dt64(g.From), nil
	case "toTime_ms":
		return dt64(g.To), nil
	case "interval_s":
		return fmt.Sprint(seconds), nil
	case "timeFilter":
		if err := needCol(); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s >= %s AND %s <= %s", col, dt(g.From), col, dt(g.To)), nil
	case "timeFilter_ms":
		if err := needCol(); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s >= %s AND %s <= %s", col, dt64(g.From), col, dt64(g.To)), nil
	case "timeInterval":
		if err := needCol(); err != nil {
			return "", err
		}
		return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", col, seconds), nil
	}
	return "", fmt.Errorf("not a macro of the ClickHouse data source")
}
