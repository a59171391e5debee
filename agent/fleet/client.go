package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drover-ml/drover/agent/evaluate"
	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/agent/versions"
)

// Versions is what the client drives: the agent's versions.Set.
type Versions interface {
	// SetDesired replaces the fleet's routing (route.Table.SetDesired).
	SetDesired(d map[string]route.Desired, by string)
	// Models and Status describe what the agent has, for the inventory.
	Models() []string
	Status(model string) (versions.ModelStatus, error)
}

// Registration is a collector's answer to POST /v1/agents/register.
type Registration struct {
	Agent             string `json:"agent"`
	HeartbeatInterval string `json:"heartbeat_interval"`
	OTLP              struct {
		GRPC string `json:"grpc"`
		HTTP string `json:"http"`
	} `json:"otlp"`
	// Collector is the base URL that answered (not in the JSON).
	Collector string `json:"-"`
}

// Config is a Client's configuration.
type Config struct {
	// Collectors are the collectors' admin base URLs, tried in turn.
	// Required.
	Collectors []string
	// Token is the agent's bearer token (role agent).
	Token string
	// Labels and Host describe the agent; Build is its version string.
	Labels      map[string]string
	Host, Build string
	// HeartbeatInterval is the longest time between inventory reports
	// until a collector's registration answer says otherwise. Default 10s.
	HeartbeatInterval time.Duration
	// DataDir keeps agent.id, desired.json, downloaded.json and the blob
	// cache; ModelDir is the model store downloads go into. Required.
	DataDir, ModelDir string
	// Versions is the agent's version set. Required.
	Versions Versions
	// HTTPClient sends the requests (TLS settings); nil: a default client.
	// It must not have a Timeout shorter than Wait.
	HTTPClient *http.Client
	// Wait is the long-poll's wait (default 30s, at most 60s).
	Wait time.Duration
	// OnRegister, if not nil, is called with each registration answer:
	// where the collector wants OTLP sent.
	OnRegister func(Registration)
	Logger     *slog.Logger
}

// Client follows the fleet's desired state for one agent (see the package
// comment). New applies the persisted desired state; Run talks to the
// collectors until its context ends. Its methods are safe for concurrent
// use.
type Client struct {
	cfg  Config
	id   string
	conn *conn
	dist *distributor
	log  *slog.Logger

	kickDist, kickReport chan struct{}

	mu         sync.Mutex
	desired    Desired
	reg        *Registration
	heartbeat  time.Duration
	lastErr    string
	lastLogged string
}

// New returns a client for cfg. It reads (or creates) the agent id, reads
// desired.json and applies it to cfg.Versions at once, so that the agent
// serves the last desired versions before any collector answers. A
// corrupt desired.json or downloaded.json is an error.
func New(cfg Config) (*Client, error) {
	if len(cfg.Collectors) == 0 || cfg.Versions == nil || cfg.DataDir == "" || cfg.ModelDir == "" {
		return nil, errors.New("fleet: collectors, versions, data dir and model dir are required")
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.Wait <= 0 || cfg.Wait > 60*time.Second {
		cfg.Wait = 30 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	id, err := AgentID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	urls := make([]string, len(cfg.Collectors))
	for i, u := range cfg.Collectors {
		urls[i] = strings.TrimRight(u, "/")
	}
	c := &Client{cfg: cfg, id: id, log: cfg.Logger, heartbeat: cfg.HeartbeatInterval,
		conn:     &conn{urls: urls, token: cfg.Token, http: cfg.HTTPClient},
		kickDist: make(chan struct{}, 1), kickReport: make(chan struct{}, 1)}
	c.dist, err = newDistributor(cfg.ModelDir, cfg.DataDir, c.conn, cfg.Logger)
	if err != nil {
		return nil, err
	}
	d, err := readDesired(filepath.Join(cfg.DataDir, DesiredFile))
	if err != nil {
		return nil, err
	}
	if len(d.Models) > 0 {
		c.log.Info("following the last desired state until a collector answers", "models", len(d.Models), "file", filepath.Join(cfg.DataDir, DesiredFile))
	}
	c.apply(d, false)
	return c, nil
}

// ID returns the agent's id.
func (c *Client) ID() string { return c.id }

// Desired returns the desired state the agent follows.
func (c *Client) Desired() Desired {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.desired
}

// by names the collectors in errors of refused local changes.
func (c *Client) by() string { return strings.Join(c.conn.urls, ",") }

// apply makes d the desired state: persisted (when persist), routed,
// then downloads and the inventory follow.
func (c *Client) apply(d Desired, persist bool) {
	if persist {
		if err := writeJSONFile(filepath.Join(c.cfg.DataDir, DesiredFile), d); err != nil {
			c.setErr(fmt.Errorf("persist the desired state: %w", err))
		}
	}
	c.mu.Lock()
	c.desired = d
	c.mu.Unlock()
	c.cfg.Versions.SetDesired(d.Routes(), c.by())
	kick(c.kickDist)
	kick(c.kickReport)
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// setErr records the agent's last error (nil: none) and logs a new one
// once.
func (c *Client) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.lastErr = ""
		return
	}
	c.lastErr = err.Error()
	if c.lastErr != c.lastLogged {
		c.log.Warn("fleet control", "err", err)
		c.lastLogged = c.lastErr
	}
}

// Run registers with a collector, follows the desired state, downloads and
// reports the inventory until ctx is cancelled; it then returns nil once
// its goroutines have stopped. A collector that cannot be reached is
// retried with backoff, the others in turn.
func (c *Client) Run(ctx context.Context) error {
	defer c.cfg.HTTPClient.CloseIdleConnections()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.session(ctx) }()
	go func() { defer wg.Done(); c.distribute(ctx) }()
	go func() { defer wg.Done(); c.report(ctx) }()
	wg.Wait()
	return nil
}

// session registers, then long-polls the desired state; on an error it
// backs off and registers again (with the next collector when this one
// cannot be reached).
func (c *Client) session(ctx context.Context) {
	bo := backoff{min: 200 * time.Millisecond, max: 15 * time.Second}
	for ctx.Err() == nil {
		reg, err := c.register(ctx)
		if err == nil {
			c.mu.Lock()
			c.reg = reg
			c.mu.Unlock()
			c.setErr(nil)
			kick(c.kickReport)
			err = c.follow(ctx, &bo)
		}
		if ctx.Err() != nil {
			return
		}
		c.setErr(err)
		if !sleep(ctx, bo.next()) {
			return
		}
	}
}

func (c *Client) register(ctx context.Context) (*Registration, error) {
	body, _ := json.Marshal(map[string]any{"agent": c.id, "host": c.cfg.Host, "labels": labelsOrEmpty(c.cfg.Labels), "build": c.cfg.Build})
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := c.conn.do(rctx, http.MethodPost, "/v1/agents/register", body, nil)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("register with %s: %w", resp.Request.URL.Host, statusError(resp))
	}
	var reg Registration
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&reg); err != nil {
		return nil, fmt.Errorf("register: the answer: %w", err)
	}
	reg.Collector = c.conn.base()
	if d, err := time.ParseDuration(reg.HeartbeatInterval); err == nil && d >= 100*time.Millisecond {
		c.mu.Lock()
		c.heartbeat = d
		c.mu.Unlock()
	}
	c.log.Info("registered with a collector", "collector", reg.Collector, "agent", c.id, "heartbeat_interval", reg.HeartbeatInterval, "otlp_grpc", reg.OTLP.GRPC, "otlp_http", reg.OTLP.HTTP)
	if c.cfg.OnRegister != nil {
		c.cfg.OnRegister(reg)
	}
	return &reg, nil
}

// errReregister: the collector does not know this agent (it restarted, or
// the request went to another collector).
var errReregister = errors.New("the collector does not know this agent: registering again")

// follow long-polls the desired state until an error.
func (c *Client) follow(ctx context.Context, bo *backoff) error {
	for {
		etag := c.Desired().ETag
		hdr := http.Header{}
		if etag != "" {
			hdr.Set("If-None-Match", etag)
		}
		// Another request (an inventory, a label) failed over to another
		// collector, or the registration was lost: register again, with
		// the collector the requests now go to.
		c.mu.Lock()
		reg := c.reg
		c.mu.Unlock()
		if reg == nil || reg.Collector != c.conn.base() {
			return errReregister
		}
		rctx, cancel := context.WithTimeout(ctx, c.cfg.Wait+15*time.Second)
		resp, err := c.conn.doCurrent(rctx, http.MethodGet, "/v1/agents/"+url.PathEscape(c.id)+"/desired?wait="+c.cfg.Wait.String(), nil, hdr)
		if err != nil {
			cancel()
			return fmt.Errorf("follow the desired state: %w", err)
		}
		err = c.desiredAnswer(resp)
		resp.Body.Close()
		cancel()
		if err != nil {
			return err
		}
		bo.reset()
	}
}

func (c *Client) desiredAnswer(resp *http.Response) error {
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil
	case http.StatusNotFound:
		return errReregister
	case http.StatusOK:
	default:
		return fmt.Errorf("follow the desired state: %w", statusError(resp))
	}
	var d Desired
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&d); err != nil {
		return fmt.Errorf("follow the desired state: the answer: %w", err)
	}
	if dropped := d.sanitize(); len(dropped) > 0 {
		c.log.Warn("desired state: ignoring models whose name the agent does not accept", "models", dropped)
	}
	d.ETag = resp.Header.Get("ETag")
	prev := c.Desired()
	for name, s := range d.Models {
		if p, ok := prev.Models[name]; !ok || p.Revision != s.Revision {
			c.log.Info("desired state", "model", name, "revision", s.Revision, "serving", s.Serving, "previous", s.Previous, "canary", s.Canary, "shadow", s.Shadow, "pinned", s.Pinned)
		}
	}
	c.apply(d, true)
	return nil
}

// distribute runs the distributor on each change of the desired state,
// after a failure with backoff, and every heartbeat interval (so versions
// that stopped serving are removed).
func (c *Client) distribute(ctx context.Context) {
	bo := backoff{min: time.Second, max: time.Minute}
	var retry <-chan time.Time
	for {
		c.mu.Lock()
		hb := c.heartbeat
		c.mu.Unlock()
		tick := time.NewTimer(hb)
		select {
		case <-ctx.Done():
			tick.Stop()
			return
		case <-c.kickDist:
		case <-retry:
		case <-tick.C:
		}
		tick.Stop()
		failed := c.dist.sync(ctx, c.Desired(), c.servingVersions)
		retry = nil
		if failed {
			retry = time.After(bo.next())
		} else {
			bo.reset()
		}
		kick(c.kickReport)
	}
}

// servingVersions returns the versions of model that serve now.
func (c *Client) servingVersions(model string) []int64 {
	st, err := c.cfg.Versions.Status(model)
	if err != nil {
		return nil
	}
	var out []int64
	for _, v := range st.Versions {
		if v.State == "serving" || v.State == "loading" {
			out = append(out, v.Version)
		}
	}
	return out
}

// Inventory is PUT /v1/agents/{agent}/inventory's body.
type Inventory struct {
	Host      string            `json:"host"`
	Labels    map[string]string `json:"labels"`
	Revision  map[string]int64  `json:"revision"`
	Models    []ModelInventory  `json:"models"`
	LastError *string           `json:"last_error"`
}

// ModelInventory is one model in the inventory.
type ModelInventory struct {
	Model    string             `json:"model"`
	Serving  int64              `json:"serving"`
	Versions []VersionInventory `json:"versions"`
	Error    *string            `json:"error"`
}

// MaxInventoryVersions is the most versions reported per model (the
// collectors' limit).
const MaxInventoryVersions = 64

// VersionInventory is one version of a model: its state is the agent's
// (serving, loaded, loading, draining, failed, available, incomplete,
// invalid), canary or shadow (a split version serving beside the default
// one), or downloading.
type VersionInventory struct {
	Version int64   `json:"version"`
	State   string  `json:"state"`
	Error   *string `json:"error"`
}

// Inventory returns what the agent reports now.
func (c *Client) Inventory() Inventory {
	c.mu.Lock()
	desired, lastErr := c.desired, c.lastErr
	c.mu.Unlock()
	errs, downloading := c.dist.status()
	inv := Inventory{Host: c.cfg.Host, Labels: labelsOrEmpty(c.cfg.Labels), Revision: map[string]int64{}, Models: []ModelInventory{}}
	for name, s := range desired.Models {
		inv.Revision[name] = s.Revision
	}
	names := c.cfg.Versions.Models()
	for name := range desired.Models {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		mi := ModelInventory{Model: name, Versions: []VersionInventory{}}
		st, _ := c.cfg.Versions.Status(name)
		seen := map[int64]bool{}
		ds := desired.Models[name]
		for _, v := range st.Versions {
			vi := VersionInventory{Version: v.Version, State: v.State}
			if v.State == "serving" && !v.Default {
				// A split version serving beside the default one.
				switch v.Version {
				case splitVersion(ds.Canary):
					vi.State = "canary"
				case splitVersion(ds.Shadow):
					vi.State = "shadow"
				}
			}
			if v.Reason != "" {
				vi.Error = ptr(v.Reason)
			}
			if v.Default && v.State == "serving" {
				mi.Serving = v.Version
			}
			seen[v.Version] = true
			mi.Versions = append(mi.Versions, vi)
		}
		if v := downloading[name]; v != 0 && !seen[v] {
			mi.Versions = append(mi.Versions, VersionInventory{Version: v, State: "downloading"})
			seen[v] = true
		}
		var msgs []string
		for _, v := range slices.Sorted(maps.Keys(errs[name])) {
			msgs = append(msgs, errs[name][v])
			if !seen[v] {
				mi.Versions = append(mi.Versions, VersionInventory{Version: v, State: "failed", Error: ptr(errs[name][v])})
			}
		}
		if len(msgs) > 0 {
			mi.Error = ptr(strings.Join(msgs, "; "))
			if lastErr == "" {
				lastErr = msgs[len(msgs)-1]
			}
		}
		slices.SortFunc(mi.Versions, func(a, b VersionInventory) int { return int(b.Version - a.Version) })
		if len(mi.Versions) > MaxInventoryVersions {
			// Keep what says something (serving, loading, failed...), then
			// the newest of the others.
			idle := func(v VersionInventory) bool { return v.State == "available" }
			busy := slices.DeleteFunc(slices.Clone(mi.Versions), idle)
			rest := slices.DeleteFunc(slices.Clone(mi.Versions), func(v VersionInventory) bool { return !idle(v) })
			mi.Versions = append(busy, rest...)[:MaxInventoryVersions]
			slices.SortFunc(mi.Versions, func(a, b VersionInventory) int { return int(b.Version - a.Version) })
		}
		inv.Models = append(inv.Models, mi)
	}
	if lastErr != "" {
		inv.LastError = ptr(lastErr)
	}
	return inv
}

func ptr(s string) *string { return &s }

func labelsOrEmpty(l map[string]string) map[string]string {
	if l == nil {
		return map[string]string{}
	}
	return l
}

// report PUTs the inventory when it changes (checked on every kick and
// every second at most) and at least every heartbeat interval.
func (c *Client) report(ctx context.Context) {
	var last []byte
	var sent time.Time
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kickReport:
		case <-poll.C:
		}
		c.mu.Lock()
		registered, hb := c.reg != nil, c.heartbeat
		c.mu.Unlock()
		if !registered {
			continue
		}
		b, _ := json.Marshal(c.Inventory())
		if bytes.Equal(b, last) && time.Since(sent) < hb {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		resp, err := c.conn.do(rctx, http.MethodPut, "/v1/agents/"+url.PathEscape(c.id)+"/inventory", b, http.Header{"Content-Type": {"application/json"}})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.setErr(fmt.Errorf("report the inventory: %w", err))
			}
			continue
		}
		status := resp.StatusCode
		serr := statusError(resp)
		resp.Body.Close()
		switch {
		case status/100 == 2:
			last, sent = b, time.Now()
		case status == http.StatusNotFound:
			c.mu.Lock()
			c.reg = nil // the session registers again on its next error
			c.mu.Unlock()
			c.setErr(fmt.Errorf("report the inventory: %w", errReregister))
		default:
			c.setErr(fmt.Errorf("report the inventory: %w", serr))
		}
	}
}

// ForwardFeedback posts a feedback body (a label for a request this agent
// did not sample) to the collectors' POST /v2/models/{model}/feedback
// with the agent's token, and returns the collector's status and answer.
// It is the hook for forwarding labels fleet-wide (docs/fleet.md).
func (c *Client) ForwardFeedback(ctx context.Context, model string, body []byte) (int, []byte, error) {
	resp, err := c.conn.do(ctx, http.MethodPost, "/v2/models/"+url.PathEscape(model)+"/feedback", body, http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return 0, nil, fmt.Errorf("forward feedback for %s: %w", model, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// SendFeedback is evaluate.ForwardOptions.Send for labels forwarded
// fleet-wide: ForwardFeedback, with a 400 or 413 answer wrapping
// evaluate.ErrPermanent (retrying cannot fix it) and any other non-2xx
// an error to retry.
func (c *Client) SendFeedback(ctx context.Context, model string, body []byte) error {
	status, answer, err := c.ForwardFeedback(ctx, model, body)
	switch {
	case err != nil:
		return err
	case status/100 == 2:
		return nil
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: forward feedback for %s: %d %s", evaluate.ErrPermanent, model, status, bytes.TrimSpace(answer))
	default:
		return fmt.Errorf("forward feedback for %s: %d %s", model, status, bytes.TrimSpace(answer))
	}
}

// conn sends requests to the collectors: to the current one, and on a
// transport error or a 502/503/504 to the others in turn (the first that
// answers becomes current).
type conn struct {
	urls  []string
	token string
	http  *http.Client

	mu  sync.Mutex
	cur int
}

func (c *conn) base() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.urls[c.cur]
}

func (c *conn) do(ctx context.Context, method, path string, body []byte, hdr http.Header) (*http.Response, error) {
	c.mu.Lock()
	start := c.cur
	c.mu.Unlock()
	var errs []error
	for i := range c.urls {
		k := (start + i) % len(c.urls)
		resp, err := c.send(ctx, c.urls[k], method, path, body, hdr)
		if err == nil {
			c.mu.Lock()
			c.cur = k
			c.mu.Unlock()
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.urls[k], err))
	}
	return nil, fmt.Errorf("no collector answered: %w", errors.Join(errs...))
}

// doCurrent sends to the current collector only: the session's requests,
// which belong to the collector the agent registered with. When it cannot
// be reached (or answers 502/503/504) the next collector becomes current,
// and the error tells the session to register there: its registration
// answer (the OTLP endpoint) follows the failover.
func (c *conn) doCurrent(ctx context.Context, method, path string, body []byte, hdr http.Header) (*http.Response, error) {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	resp, err := c.send(ctx, c.urls[cur], method, path, body, hdr)
	if err != nil && ctx.Err() == nil {
		c.mu.Lock()
		if c.cur == cur {
			c.cur = (cur + 1) % len(c.urls)
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", c.urls[cur], err)
	}
	return resp, err
}

// send sends one request to the collector at base; a 502, 503 or 504
// answer is an error (its body read and closed).
func (c *conn) send(ctx context.Context, base, method, path string, body []byte, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for h, vs := range hdr {
		req.Header[h] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout {
		err = statusError(resp)
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// statusError reads an unexpected answer into an error (the body's
// "error" field when it has one).
func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<14))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return fmt.Errorf("%s %s: %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status, msg)
}

// backoff is an exponential backoff with jitter.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
