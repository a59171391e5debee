package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/ring"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// TestPublishesAcrossCollectors: two collectors of one cluster (one
// ClickHouse, one shared blob directory) take 24 concurrent publishes of
// distinct content, half each, with a publisher token made on the first.
// The model's owner allocates every number (the other forwards its
// commits): the versions are 1..24, each once, and a version published
// through one collector is pulled byte for byte from the other.
func TestPublishesAcrossCollectors(t *testing.T) {
	db := testenv.ClickHouse(t)
	logs := &testenv.Buffer{}
	blobs := "file://" + filepath.ToSlash(filepath.Join(t.TempDir(), "blobs"))
	key := gossipKeyFile(t) // one key for the cluster
	nodeConfig := func(name string, join ...string) Config {
		cfg := testConfig(t, db.DSN, db.Name)
		cfg.Cluster = Cluster{NodeName: name, GossipAddr: "127.0.0.1:0", Join: join, KeyFile: key}
		cfg.Registry.BlobURL, cfg.Registry.SharedPath = blobs, true
		cfg.Auth.RefreshInterval = 100 * time.Millisecond
		return cfg
	}
	fast := hooks{ring: func(rc *ring.Config) {
		l := ring.LoopbackConfig(rc.NodeName)
		rc.ProbeInterval, rc.ProbeTimeout, rc.GossipInterval, rc.LeaveTimeout = l.ProbeInterval, l.ProbeTimeout, l.GossipInterval, l.LeaveTimeout
	}}
	a := startNode(t, nodeConfig("reg-a"), fast, logs)
	v, err := a.view()
	if err != nil || len(v.Members) != 1 {
		t.Fatalf("view of a: %v, %v", v, err)
	}
	b := startNode(t, nodeConfig("reg-b", v.Members[0].Addr), fast, logs)
	b.token = a.token
	const model = "shared"
	testenv.EventuallyNil(t, time.Minute, "both nodes to agree on the owner and see its admin address", func() error {
		va, err := a.view()
		if err != nil {
			return err
		}
		vb, err := b.view()
		if err != nil {
			return err
		}
		if len(va.Members) != 2 || len(vb.Members) != 2 {
			return fmt.Errorf("members: %d and %d", len(va.Members), len(vb.Members))
		}
		for _, m := range append(va.Members, vb.Members...) {
			if m.Admin == "" {
				return fmt.Errorf("%s advertises no admin address", m.Name)
			}
		}
		return nil
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("collector logs:\n%s", logs.String())
		}
	})

	ctx := context.Background()
	admin := adminclient.New("http://"+a.admin, a.token)
	defer admin.Close()
	pub, _, err := admin.CreateToken(ctx, adminclient.TokenRequest{Name: "ci", Role: "publisher"})
	if err != nil {
		t.Fatal(err)
	}
	clients := []*adminclient.Client{adminclient.New("http://"+a.admin, pub.Token), adminclient.New("http://"+b.admin, pub.Token)}
	for _, c := range clients {
		defer c.Close()
	}
	testenv.EventuallyNil(t, 30*time.Second, "b to accept the publisher token made on a", func() error {
		// A publisher may not read records: 403 once b knows the token
		// (401 before).
		if _, _, err := clients[1].Version(ctx, model, 1); !adminclient.IsStatus(err, 403) {
			return fmt.Errorf("b answers %v; want 403", err)
		}
		return nil
	})

	const n = 24
	dirs := make([]string, n)
	for i := range dirs {
		w := [][]float32{{1, float32(i)}, {2, 3}}
		m, err := testmodels.Linear("X", "Y", w, []float32{float32(i), 0})
		if err != nil {
			t.Fatal(err)
		}
		dirs[i] = filepath.Join(t.TempDir(), "v")
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirs[i], manifest.ModelFile), m, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	versions := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, _, err := clients[i%2].Publish(ctx, model, dirs[i], adminclient.PublishOptions{Message: fmt.Sprint(i)})
			if err != nil {
				errs[i] = fmt.Errorf("publish %d through %s: %w", i, []string{"a", "b"}[i%2], err)
				return
			}
			if !res.Created {
				errs[i] = fmt.Errorf("publish %d: created false for new content", i)
			}
			versions[i] = res.Version
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	sorted := slices.Sorted(slices.Values(versions))
	for i, v := range sorted {
		if v != uint64(i+1) {
			t.Fatalf("versions %v, want 1..%d each once", sorted, n)
		}
	}
	if fw := strings.Count(logs.String(), "commit forwarded to the owner"); fw != n/2 {
		t.Errorf("%d commits forwarded to the owner, want %d (those the other collector received)", fw, n/2)
	}
	if got := db.Count(t, "SELECT count() FROM "+db.Name+".registry_versions FINAL WHERE model = 'shared'"); got != n {
		t.Errorf("%d records, want %d", got, n)
	}

	// Published through a (even index), pulled from b; and the reverse.
	for _, i := range []int{0, 1} {
		dst := filepath.Join(t.TempDir(), "pulled")
		reader := adminclient.New("http://"+[]string{a.admin, b.admin}[1-i%2], a.token)
		defer reader.Close()
		if _, _, err := reader.Pull(ctx, model, versions[i], dst, adminclient.PullOptions{}); err != nil {
			t.Fatalf("pull v%d from the other collector: %v", versions[i], err)
		}
		want, _ := os.ReadFile(filepath.Join(dirs[i], manifest.ModelFile))
		got, err := os.ReadFile(filepath.Join(dst, manifest.ModelFile))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("pulled model.onnx of v%d: %d bytes, want %d (%v)", versions[i], len(got), len(want), err)
		}
	}

	// The same content again, through either collector: the same version.
	for i := range 2 {
		res, _, err := clients[i].Publish(ctx, model, dirs[3], adminclient.PublishOptions{})
		if err != nil || res.Created || res.Version != versions[3] {
			t.Errorf("republish through %d: %+v, %v; want version %d, created false", i, res, err, versions[3])
		}
	}
}
