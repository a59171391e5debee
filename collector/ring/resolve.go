package ring

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// resolver looks up names; tests replace it.
type resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// resolveTimeout bounds the DNS lookups of one join attempt.
const resolveTimeout = 5 * time.Second

// resolveJoin turns the Join entries into a sorted, de-duplicated list of
// ip:port. Entries that fail to resolve are reported in the error; the
// others are still returned, so one bad name does not stop the rest.
func resolveJoin(ctx context.Context, res resolver, entries []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	var addrs []string
	var errs []error
	for _, entry := range entries {
		got, err := resolveEntry(ctx, res, entry)
		if err != nil {
			errs = append(errs, err)
		}
		addrs = append(addrs, got...)
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), errors.Join(errs...)
}

func resolveEntry(ctx context.Context, res resolver, entry string) ([]string, error) {
	if name, ok := strings.CutPrefix(entry, srvPrefix); ok {
		_, srvs, err := res.LookupSRV(ctx, "", "", name)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", entry, err)
		}
		var addrs []string
		var errs []error
		for _, s := range srvs {
			got, err := resolveHost(ctx, res, strings.TrimSuffix(s.Target, "."), int(s.Port))
			if err != nil {
				errs = append(errs, fmt.Errorf("resolve %s: %w", entry, err))
			}
			addrs = append(addrs, got...)
		}
		return addrs, errors.Join(errs...)
	}
	host, port, err := splitJoinEntry(entry)
	if err != nil {
		return nil, err // Validate rejects these before Run
	}
	addrs, err := resolveHost(ctx, res, host, port)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", entry, err)
	}
	return addrs, nil
}

// resolveHost returns ip:port for every A and AAAA record of host (host
// itself when it is an IP).
func resolveHost(ctx context.Context, res resolver, host string, port int) ([]string, error) {
	p := strconv.Itoa(port)
	if ip := net.ParseIP(host); ip != nil {
		return []string{net.JoinHostPort(canonicalIP(ip), p)}, nil
	}
	ips, err := res.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, 0, len(ips))
	for _, s := range ips {
		if ip := net.ParseIP(s); ip != nil {
			addrs = append(addrs, net.JoinHostPort(canonicalIP(ip), p))
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no addresses for %s", host)
	}
	return addrs, nil
}

// canonicalIP writes an IP the way memberlist writes member addresses
// (IPv4 in dotted form even when stored in 16 bytes).
func canonicalIP(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.String()
}
