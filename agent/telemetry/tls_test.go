package telemetry

import (
	"fmt"
	"testing"

	"github.com/drover-ml/drover/shared/tlsconfig"
	"github.com/drover-ml/drover/shared/tlsconfig/tlstest"
)

// TestTLSTurnsInsecureOff: a tls section without insecure means TLS (the
// default of insecure follows it), in a file and in code; files without
// tls keep sending in plain text as before.
func TestTLSTurnsInsecureOff(t *testing.T) {
	ca := tlstest.NewCA(t, "drover")
	cert, key := ca.Issue(t, "agent-1", "agent-1")
	for _, tc := range []struct {
		doc          string
		wantInsecure bool
	}{
		{"interval: 1s\n", true},
		{"insecure: false\n", false},
		{fmt.Sprintf("tls: {ca_file: %s}\n", ca.File), false},
		{fmt.Sprintf("tls: {ca_file: %s, cert_file: %s, key_file: %s}\ninsecure: false\n", ca.File, cert, key), false},
	} {
		c, err := parse([]byte(tc.doc))
		if err != nil {
			t.Fatalf("%q: %v", tc.doc, err)
		}
		if c.insecure() != tc.wantInsecure || c.WithDefaults().insecure() != tc.wantInsecure {
			t.Errorf("%q: insecure %v, want %v", tc.doc, c.insecure(), tc.wantInsecure)
		}
	}
	c := Config{TLS: &tlsconfig.Client{CAFile: ca.File}}.WithDefaults()
	if c.insecure() {
		t.Error("a Config built in code with TLS and no Insecure is insecure")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	yes := true
	c.Insecure = &yes
	if err := c.Validate(); err == nil {
		t.Error("Validate accepted insecure: true with a tls section")
	}
}
