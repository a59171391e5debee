// Package fleettest is a fake collector for tests of the agent's fleet
// control: the control channel of docs/fleet.md (register, inventory,
// long-polled desired state) and the registry's read side of
// docs/registry.md (a version's files, blobs with Range and If-Range), in
// memory, on an httptest server. Faults are switched on per test.
package fleettest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/agent/fleet"
)

// Collector is the fake. Its methods are safe for concurrent use.
type Collector struct {
	// URL is the base URL agents are given.
	URL string
	// Token is the bearer token every request must carry.
	Token string

	srv    *httptest.Server
	closed chan struct{}

	mu            sync.Mutex
	changed       chan struct{} // closed and replaced on each desired change
	desired       map[string]fleet.State
	revision      int64
	files         map[string][]fileEntry // "model/version" → files
	blobs         map[string][]byte
	failBlobs     map[string]int // digest → HTTP status answered instead
	cutBlobs      map[string]int // digest → answers that stop half-way
	corrupt       map[string]bool
	inventories   map[string]fleet.Inventory
	registered    map[string]int // agent → registered now
	registrations map[string]int // agent → registrations ever
	blobGets      map[string]int // digest → GETs
	ranges        int            // GETs with a Range header
	down          bool
	feedbacks     map[string][]string // model → bodies
}

type fileEntry struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	URL    string `json:"url"`
}

// MaxWait caps the long-poll's wait, so that tests stop quickly.
const MaxWait = 2 * time.Second

// New starts a fake collector (plain HTTP) that the test closes at its
// end.
func New(t testing.TB) *Collector { return start(t, false) }

// NewTLS starts a fake collector on HTTPS; CAFile verifies it.
func NewTLS(t testing.TB) *Collector { return start(t, true) }

// CAFile writes the TLS collector's certificate (PEM) into a temporary
// file and returns its path.
func (c *Collector) CAFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "collector-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.srv.Certificate().Raw})
	if err := os.WriteFile(path, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func start(t testing.TB, useTLS bool) *Collector {
	c := &Collector{Token: "drover_agenttoken", closed: make(chan struct{}), changed: make(chan struct{}),
		desired: map[string]fleet.State{}, files: map[string][]fileEntry{}, blobs: map[string][]byte{},
		failBlobs: map[string]int{}, corrupt: map[string]bool{}, cutBlobs: map[string]int{}, inventories: map[string]fleet.Inventory{},
		feedbacks: map[string][]string{}, registered: map[string]int{}, registrations: map[string]int{}, blobGets: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/agents/register", c.register)
	mux.HandleFunc("PUT /v1/agents/{agent}/inventory", c.inventory)
	mux.HandleFunc("GET /v1/agents/{agent}/desired", c.desiredPoll)
	mux.HandleFunc("GET /v1/models/{model}/versions/{n}/files", c.listFiles)
	mux.HandleFunc("GET /v1/blobs/sha256/{digest}", c.blob)
	mux.HandleFunc("POST /v2/models/{model}/feedback", c.feedback)
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		down := c.down
		c.mu.Unlock()
		if down {
			http.Error(w, `{"error": "down"}`, http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+c.Token {
			http.Error(w, `{"error": "unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	if useTLS {
		c.srv.StartTLS()
	} else {
		c.srv.Start()
	}
	c.URL = c.srv.URL
	t.Cleanup(c.Close)
	return c
}

// Close stops the server (long-polls in flight end at once). Idempotent.
func (c *Collector) Close() {
	select {
	case <-c.closed:
		return
	default:
	}
	close(c.closed)
	c.srv.CloseClientConnections()
	c.srv.Close()
}

// SetDown makes every request answer 503 (down) or be served again.
func (c *Collector) SetDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
}

// Publish adds a registry version made of files (path → contents).
func (c *Collector) Publish(model string, version int64, files map[string][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var fs []fileEntry
	for p, b := range files {
		sum := sha256.Sum256(b)
		d := hex.EncodeToString(sum[:])
		c.blobs[d] = b
		fs = append(fs, fileEntry{Path: p, SHA256: d, Size: int64(len(b)), URL: "/v1/blobs/sha256/" + d})
	}
	c.files[model+"/"+strconv.FormatInt(version, 10)] = fs
}

// Digests returns the digests of a published version's files.
func (c *Collector) Digests(model string, version int64) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, f := range c.files[model+"/"+strconv.FormatInt(version, 10)] {
		out = append(out, f.SHA256)
	}
	return out
}

// FailBlob makes GETs of a blob answer status (0: served again).
func (c *Collector) FailBlob(digest string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if status == 0 {
		delete(c.failBlobs, digest)
	} else {
		c.failBlobs[digest] = status
	}
}

// CorruptBlob makes GETs of a blob send other bytes than its digest's
// (false: the right ones again).
func (c *Collector) CorruptBlob(digest string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corrupt[digest] = on
}

// CutBlob makes the next n GETs of a blob stop after half of what they
// send.
func (c *Collector) CutBlob(digest string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cutBlobs[digest] = n
}

// BlobGets returns how many times a blob was asked for, and how many GETs
// of any blob had a Range header.
func (c *Collector) BlobGets(digest string) (gets, ranges int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blobGets[digest], c.ranges
}

// SetDesired sets a model's desired state with the next revision, and
// wakes the long-polls. s.Serving 0 removes the model's desired state.
func (c *Collector) SetDesired(model string, s fleet.State) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.revision++
	s.Model, s.Revision = model, c.revision
	if s.Serving == 0 {
		delete(c.desired, model)
	} else {
		c.desired[model] = s
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return s.Revision
}

// Inventory returns the last inventory an agent reported.
func (c *Collector) Inventory(agent string) (fleet.Inventory, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	inv, ok := c.inventories[agent]
	return inv, ok
}

// Forget drops an agent's registration (a collector that restarted):
// its long-poll and inventory answer 404 until it registers again.
func (c *Collector) Forget(agent string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.registered, agent)
	delete(c.inventories, agent)
	close(c.changed) // wake its long-poll
	c.changed = make(chan struct{})
}

// Registrations returns how many times an agent registered.
func (c *Collector) Registrations(agent string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.registrations[agent]
}

// Agents returns the ids of the agents that registered.
func (c *Collector) Agents() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for a := range c.registered {
		out = append(out, a)
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (c *Collector) register(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Agent  string            `json:"agent"`
		Host   string            `json:"host"`
		Labels map[string]string `json:"labels"`
		Build  string            `json:"build"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.Agent == "" {
		http.Error(w, `{"error": "bad registration"}`, http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.registered[in.Agent]++
	c.registrations[in.Agent]++
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"agent": in.Agent, "heartbeat_interval": "1s",
		"otlp": map[string]string{"grpc": "127.0.0.1:4317", "http": "http://127.0.0.1:4318"}})
}

func (c *Collector) inventory(w http.ResponseWriter, r *http.Request) {
	agent := r.PathValue("agent")
	var inv fleet.Inventory
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&inv); err != nil {
		http.Error(w, fmt.Sprintf(`{"error": %q}`, err.Error()), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.registered[agent] == 0 {
		http.Error(w, `{"error": "unknown agent"}`, http.StatusNotFound)
		return
	}
	c.inventories[agent] = inv
	w.WriteHeader(http.StatusNoContent)
}

// etag is the current desired state's entity tag (c.mu held).
func (c *Collector) etag() string { return `"r` + strconv.FormatInt(c.revision, 10) + `"` }

func (c *Collector) desiredPoll(w http.ResponseWriter, r *http.Request) {
	wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
	if err != nil || wait <= 0 {
		wait = MaxWait
	}
	wait = min(wait, MaxWait)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if c.registered[r.PathValue("agent")] == 0 {
			c.mu.Unlock()
			http.Error(w, `{"error": "unknown agent"}`, http.StatusNotFound)
			return
		}
		etag, changed := c.etag(), c.changed
		if r.Header.Get("If-None-Match") != etag {
			models := map[string]fleet.State{}
			for k, v := range c.desired {
				models[k] = v
			}
			c.mu.Unlock()
			w.Header().Set("ETag", etag)
			writeJSON(w, http.StatusOK, map[string]any{"models": models})
			return
		}
		c.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		case <-c.closed:
			return
		}
	}
}

// Feedbacks returns the feedback bodies posted for model.
func (c *Collector) Feedbacks(model string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.feedbacks[model]...)
}

// feedback accepts a JSON array (400 for anything else).
func (c *Collector) feedback(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var arr []json.RawMessage
	if json.Unmarshal(b, &arr) != nil {
		http.Error(w, `{"error": "want a JSON array"}`, http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.feedbacks[r.PathValue("model")] = append(c.feedbacks[r.PathValue("model")], string(b))
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]int{"accepted": len(arr)})
}

func (c *Collector) listFiles(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	fs, ok := c.files[r.PathValue("model")+"/"+r.PathValue("n")]
	c.mu.Unlock()
	if !ok {
		http.Error(w, `{"error": "no such version"}`, http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, fs)
}

func (c *Collector) blob(w http.ResponseWriter, r *http.Request) {
	d := r.PathValue("digest")
	c.mu.Lock()
	b, ok := c.blobs[d]
	fail := c.failBlobs[d]
	if c.corrupt[d] && len(b) > 0 {
		b = append([]byte{b[0] ^ 0xff}, b[1:]...)
	}
	cut := c.cutBlobs[d] > 0
	if cut {
		c.cutBlobs[d]--
	}
	c.blobGets[d]++
	if r.Header.Get("Range") != "" {
		c.ranges++
	}
	c.mu.Unlock()
	if !ok {
		http.Error(w, `{"error": "no such blob"}`, http.StatusNotFound)
		return
	}
	if fail != 0 {
		http.Error(w, `{"error": "injected failure"}`, fail)
		return
	}
	etag := `"` + d + `"`
	w.Header().Set("ETag", etag)
	from := 0
	if rg, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok && r.Header.Get("If-Range") == etag {
		if n, err := strconv.Atoi(strings.TrimSuffix(rg, "-")); err == nil && n >= 0 && n < len(b) {
			from = n
		}
	}
	body := b[from:]
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if from > 0 {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(b)-1, len(b)))
		w.WriteHeader(http.StatusPartialContent)
	}
	if cut {
		_, _ = w.Write(body[:len(body)/2])
		// Stop half-way: the handler panics with ErrAbortHandler, which
		// closes the connection without logging.
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	_, _ = io.Copy(w, strings.NewReader(string(body)))
}
