package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// chQuery runs a query over the engine's HTTP interface (httpAddr:
// [user:password@]host:port, see chHTTP) and returns the trimmed TSV
// result.
func chQuery(httpAddr, q string) (string, error) {
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post("http://"+httpAddr+"/?"+url.Values{"query": {q}}.Encode(), "text/plain", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("clickhouse: %s: %s", q, strings.TrimSpace(string(b)))
	}
	return strings.TrimSpace(string(b)), nil
}

// countRows sums count() over tables; a table that does not exist yet
// counts 0.
func countRows(httpAddr string, tables []string) (int64, error) {
	var n int64
	for _, t := range tables {
		out, err := chQuery(httpAddr, "SELECT count() FROM "+t)
		if err != nil {
			if strings.Contains(err.Error(), "UNKNOWN_TABLE") || strings.Contains(err.Error(), "UNKNOWN_DATABASE") {
				continue
			}
			return 0, err
		}
		v, err := strconv.ParseInt(out, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("count %s: %q", t, out)
		}
		n += v
	}
	return n, nil
}

// waitRows polls until tables hold want rows (or more), or timeout. It
// returns the last count.
func waitRows(httpAddr string, tables []string, want int64, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	var last int64
	for {
		n, err := countRows(httpAddr, tables)
		if err == nil {
			last = n
			if n >= want {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("%d of %d rows after %s (last error: %v)", last, want, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
