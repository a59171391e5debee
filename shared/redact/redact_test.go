package redact_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/drover-ml/drover/shared/redact"
)

func TestURL(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"clickhouse DSN":       {"clickhouse://drover:s3cr3t@127.0.0.1:9000/drover?dial_timeout=1s", "clickhouse://drover:xxxxx@127.0.0.1:9000/drover?dial_timeout=1s"},
		"user without pass":    {"clickhouse://drover@host:9000/db", "clickhouse://drover@host:9000/db"},
		"no credentials":       {"clickhouse://host:9000/db", "clickhouse://host:9000/db"},
		"s3 keys in the query": {"s3://bucket?region=eu&access_key_id=AKIA&secret_access_key=zzz", "s3://bucket?access_key_id=xxxxx&region=eu&secret_access_key=xxxxx"},
		"presigned":            {"https://b.s3.amazonaws.com/o?X-Amz-Credential=AKIA&X-Amz-Signature=abc", "https://b.s3.amazonaws.com/o?X-Amz-Credential=xxxxx&X-Amz-Signature=xxxxx"},
		"webhook token":        {"https://hooks.example.com/retrain?token=t0k", "https://hooks.example.com/retrain?token=xxxxx"},
		"unparsable":           {"clickhouse://drover:p@ss word@%zz/db", "clickhouse://xxxxx"},
		"not a URL":            {"embedded", "embedded"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := redact.URL(tc.in); got != tc.want {
				t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	in := `open clickhouse "clickhouse://u:hunter2@h:9000/db": code: 516, password hunter2 wrong`
	got := redact.Text(in, "hunter2")
	if strings.Contains(got, "hunter2") {
		t.Fatalf("secret left in %q", got)
	}
	if !strings.Contains(got, "clickhouse://u:xxxxx@h:9000/db") {
		t.Fatalf("URL not kept recognisable: %q", got)
	}
}

// FuzzURL: whatever the input, a password that url.Parse finds is not in
// the output, and nothing in the output reads as "://user:password@" with a
// password other than the mask.
func FuzzURL(f *testing.F) {
	f.Add("clickhouse://drover:s3cr3t@127.0.0.1:9000/drover")
	f.Add("s3://b?secret_access_key=s3cr3t")
	f.Add("0#://:s3cr3t@")
	f.Fuzz(func(t *testing.T, s string) {
		out := redact.URL(s)
		if u, err := url.Parse(s); err == nil {
			if pw, ok := u.User.Password(); ok && len(pw) >= 6 && pw != redact.Mask && strings.Contains(out, ":"+pw+"@") {
				t.Fatalf("password %q left in %q -> %q", pw, s, out)
			}
		}
		for _, m := range redact.UserinfoPassword.FindAllString(out, -1) {
			if !strings.HasSuffix(m, ":"+redact.Mask+"@") {
				t.Fatalf("%q left in %q -> %q", m, s, out)
			}
		}
	})
}
