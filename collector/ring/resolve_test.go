package ring

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
)

type fakeResolver struct {
	hosts map[string][]string
	srv   map[string][]*net.SRV
}

func (f fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := f.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (f fakeResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	if s, ok := f.srv[name]; ok {
		return name, s, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func TestResolveJoin(t *testing.T) {
	res := fakeResolver{
		hosts: map[string][]string{
			"headless.ns.svc": {"10.0.0.1", "10.0.0.2", "fd00::3"},
			"pod-0.example":   {"10.0.0.1"},
			"pod-9.example":   {"::ffff:10.0.0.9"},
		},
		srv: map[string][]*net.SRV{
			"_gossip._tcp.example": {{Target: "pod-0.example.", Port: 8000}, {Target: "pod-9.example.", Port: 8001}},
		},
	}
	got, err := resolveJoin(context.Background(), res, []string{
		"headless.ns.svc:7946", // every A and AAAA record
		"pod-0.example",        // default port; duplicate of the first address
		"10.0.0.4:1",           // an IP needs no lookup
		"dnssrv+_gossip._tcp.example",
		"missing.example:7946", // fails, the rest still count
	})
	want := []string{"10.0.0.1:7946", "10.0.0.1:8000", "10.0.0.2:7946", "10.0.0.4:1", "10.0.0.9:8001", "[fd00::3]:7946"}
	if !slices.Equal(got, want) {
		t.Errorf("addresses = %v\nwant %v", got, want)
	}
	var dnsErr *net.DNSError
	if err == nil || !strings.Contains(err.Error(), "missing.example") || !errors.As(err, &dnsErr) {
		t.Errorf("err = %v, want the failed lookup of missing.example", err)
	}
}
