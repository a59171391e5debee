package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// fixture is a registry on a fresh database and a file:// store.
type fixture struct {
	reg   *Registry
	db    *testenv.DB
	blobs *Blobs
	clock *testenv.Clock
	inUse map[uint64]string // version -> reason it is in use
	mu    sync.Mutex
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := testenv.ClickHouse(t)
	if err := store.Migrate(context.Background(), db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	blobs, _ := fileStore(t)
	f := &fixture{db: db, blobs: blobs, clock: testenv.NewClock(time.Now()), inUse: map[uint64]string{}}
	f.reg = New(db.Conn, blobs, Options{
		Database: db.Name,
		GCGrace:  time.Hour,
		Logger:   slog.New(slog.DiscardHandler),
		Now:      f.clock.Now,
		InUse: func(_ context.Context, _ string, v uint64) (bool, string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			reason, ok := f.inUse[v]
			return ok, reason, nil
		},
	})
	return f
}

// linear returns a small real ONNX model whose bytes depend on seed.
func linear(t *testing.T, seed float32) []byte {
	t.Helper()
	m, err := testmodels.Linear("X", "Y", [][]float32{{1, seed}, {2, 3}}, []float32{seed, 0})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func upload(path string, data []byte) Upload {
	return Upload{Path: path, SHA256: digestOf(data), Size: int64(len(data)), Body: bytes.NewReader(data)}
}

func (f *fixture) publish(t *testing.T, model string, files map[string][]byte, meta Meta) (Version, bool) {
	t.Helper()
	var us []Upload
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range files {
			if !yield(p) {
				return
			}
		}
	}) {
		us = append(us, upload(p, files[p]))
	}
	v, created, err := f.reg.Publish(context.Background(), model, Uploads(us...), meta)
	if err != nil {
		t.Fatalf("publish %s: %v", model, err)
	}
	return v, created
}

func (f *fixture) records(t *testing.T) uint64 {
	t.Helper()
	return f.db.Count(t, "SELECT count() FROM "+Table)
}

func readAll(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const publisherYAML = `model: ignored
version: 99
golden_set:
  path: eval/golden.csv
  task: regression
  features: [a, b]
  label: y
lineage:
  author: ignored too
`

func TestPublishListShowReadBack(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	model := linear(t, 1)
	golden := []byte("a,b,y\n1,2,3\n")
	v, created := f.publish(t, "iris", map[string][]byte{
		"model.onnx": model, "eval/golden.csv": golden, "drover.yaml": []byte(publisherYAML),
	}, Meta{Author: "ada", Message: "first"})
	if !created || v.Version != 1 || v.State != StateActive || v.Source != SourcePublish || v.Author != "ada" {
		t.Fatalf("publish = %+v, created %v; want version 1, active, publish, by ada", v, created)
	}
	wantContent := ContentID([]FileInfo{{Path: "model.onnx", SHA256: digestOf(model)}, {Path: "eval/golden.csv", SHA256: digestOf(golden)}})
	if v.ContentID != wantContent {
		t.Errorf("content id %s, want %s", v.ContentID, wantContent)
	}
	if got := []string{v.Files[0].Path, v.Files[1].Path, v.Files[2].Path}; !slices.Equal(got, []string{"drover.yaml", "eval/golden.csv", "model.onnx"}) {
		t.Errorf("files %v, want drover.yaml, eval/golden.csv, model.onnx", got)
	}

	wantSig := &manifest.Signature{
		Inputs:  []manifest.Tensor{{Name: "X", Datatype: "FP32", Shape: []int64{-1, 2}}},
		Outputs: []manifest.Tensor{{Name: "Y", Datatype: "FP32", Shape: []int64{-1, 2}}},
	}
	if !reflect.DeepEqual(v.Signature, wantSig) {
		t.Errorf("signature %+v, want the model's %+v", v.Signature, wantSig)
	}

	models, err := f.reg.Models(ctx)
	if err != nil || len(models) != 1 || models[0].Model != "iris" || models[0].Versions != 1 || models[0].Latest != 1 {
		t.Fatalf("Models = %+v, %v; want iris with 1 version", models, err)
	}
	shown, err := f.reg.Version(ctx, "iris", 1)
	if err != nil {
		t.Fatal(err)
	}
	if shown.ContentID != v.ContentID || shown.Message != "first" || len(shown.Files) != 3 || !shown.Created.Equal(v.Created) ||
		!reflect.DeepEqual(shown.Signature, wantSig) {
		t.Errorf("Version(iris, 1) = %+v, want %+v", shown, v)
	}
	list, err := f.reg.Versions(ctx, "iris")
	if err != nil || len(list) != 1 || list[0].Version != 1 {
		t.Fatalf("Versions(iris) = %+v, %v", list, err)
	}

	for path, want := range map[string][]byte{"model.onnx": model, "eval/golden.csv": golden} {
		r, fi, err := f.reg.OpenFile(ctx, "iris", 1, path)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, r); !bytes.Equal(got, want) || fi.Size != int64(len(want)) {
			t.Errorf("%s read back %d bytes (size %d), want the %d published", path, len(got), fi.Size, len(want))
		}
	}
	// The registry wrote drover.yaml: its own model, version, files and
	// lineage; the publisher's golden set; the publisher's model, version
	// and lineage ignored.
	r, _, err := f.reg.OpenFile(ctx, "iris", 1, "drover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(readAll(t, r))
	if err != nil {
		t.Fatalf("the registry's drover.yaml does not parse: %v", err)
	}
	if m.Model != "iris" || m.Version != 1 || m.Lineage.Author != "ada" || m.Lineage.Message != "first" ||
		m.GoldenSet == nil || m.GoldenSet.Label != "y" || len(m.Files) != 2 {
		t.Errorf("manifest = %+v", m)
	}

	for name, err := range map[string]error{
		"unknown model":   errOf(f.reg.Versions(ctx, "nope")),
		"unknown version": errOf(f.reg.Version(ctx, "iris", 2)),
		"bad name":        errOf(f.reg.Versions(ctx, "../x")),
	} {
		if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrNotFound or ErrInvalid", name, err)
		}
	}
	if _, _, err := f.reg.OpenFile(ctx, "iris", 1, "absent.txt"); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenFile(absent) = %v, want ErrNotFound", err)
	}
}

func errOf[T any](_ T, err error) error { return err }

func TestPublishIdenticalContentReturnsTheExistingVersion(t *testing.T) {
	f := newFixture(t)
	model := linear(t, 2)
	v1, _ := f.publish(t, "m", map[string][]byte{"model.onnx": model}, Meta{Message: "one"})
	// Same files, another manifest and message: the same content.
	v, created := f.publish(t, "m", map[string][]byte{"model.onnx": model, "drover.yaml": []byte("gate:\n  min:\n    mse: 1\n")}, Meta{Message: "again"})
	if created || v.Version != v1.Version || v.Message != "one" {
		t.Fatalf("republish = v%d (%q), created %v; want v%d, not created", v.Version, v.Message, created, v1.Version)
	}
	// Another model with the same bytes is a version of its own.
	if v, created := f.publish(t, "other", map[string][]byte{"model.onnx": model}, Meta{}); !created || v.Version != 1 {
		t.Fatalf("same bytes, other model = v%d created %v; want v1 created", v.Version, created)
	}
	if n := f.records(t); n != 2 {
		t.Errorf("%d records, want 2", n)
	}
}

func TestFailedPublishesLeaveNoVersion(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	model := linear(t, 3)
	cut := linear(t, 33) // only the cut upload sends it
	golden := []byte("a,b,y\n1,2,3\n")
	cases := map[string]struct {
		uploads []Upload
		meta    Meta
		want    error
		absent  string // a blob that must not exist after the publish
	}{
		"wrong digest": {[]Upload{{Path: "model.onnx", SHA256: digestOf([]byte("x")), Size: -1, Body: bytes.NewReader(model)}}, Meta{}, ErrDigestMismatch, digestOf([]byte("x"))},
		"cut upload": {[]Upload{upload("eval/golden.csv", golden),
			{Path: "model.onnx", SHA256: digestOf(cut), Size: int64(len(cut)), Body: &cutReader{cut, 20}}}, Meta{}, nil, digestOf(cut)},
		"not onnx":       {[]Upload{upload("model.onnx", []byte("name: not a model\n"))}, Meta{}, ErrInvalid, ""},
		"no model":       {[]Upload{upload("eval/golden.csv", golden)}, Meta{}, ErrInvalid, ""},
		"bad path":       {[]Upload{upload("../model.onnx", model)}, Meta{}, ErrInvalid, ""},
		"unknown parent": {[]Upload{upload("model.onnx", model)}, Meta{Parents: []uint64{7}}, ErrNotFound, ""},
		"bad manifest":   {[]Upload{upload("model.onnx", model), upload("drover.yaml", []byte("nonsense: 1\n"))}, Meta{}, ErrInvalid, ""},
		"bad source":     {[]Upload{upload("model.onnx", model)}, Meta{Source: "magic"}, ErrInvalid, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := f.reg.Publish(ctx, "m", Uploads(c.uploads...), c.meta)
			if err == nil {
				t.Fatal("publish succeeded")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("publish = %v, want %v", err, c.want)
			}
			if n := f.records(t); n != 0 {
				t.Fatalf("%d records after a failed publish", n)
			}
			if c.absent != "" {
				if ok, err := f.blobs.Exists(ctx, c.absent); err != nil || ok {
					t.Errorf("blob %s exists after the failed publish (%v)", c.absent[:8], err)
				}
			}
		})
	}
	// The first good publish still gets version 1: failures used no number.
	if v, _ := f.publish(t, "m", map[string][]byte{"model.onnx": model}, Meta{}); v.Version != 1 {
		t.Errorf("first good publish got v%d, want v1", v.Version)
	}
}

func TestConcurrentPublishesGetDistinctGapFreeNumbers(t *testing.T) {
	f := newFixture(t)
	const n = 20
	models := make([][]byte, n)
	for i := range models {
		models[i] = linear(t, float32(i+10))
	}
	versions := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, _, err := f.reg.Publish(context.Background(), "busy", Uploads(upload("model.onnx", models[i])), Meta{Message: fmt.Sprint(i)})
			versions[i], errs[i] = v.Version, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != uint64(i+1) {
			t.Fatalf("versions %v, want 1..%d each once", versions, n)
		}
	}
	if got := f.db.Count(t, "SELECT count() FROM "+Table+" FINAL WHERE model = 'busy'"); got != n {
		t.Errorf("%d records, want %d", got, n)
	}
}

func TestDeleteAndGCRemoveOnlyUnsharedBlobs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b := linear(t, 4), linear(t, 5)
	shared := []byte("a,b,y\n1,2,3\n")
	v1, _ := f.publish(t, "m", map[string][]byte{"model.onnx": a, "eval/golden.csv": shared}, Meta{})
	v2, _ := f.publish(t, "m", map[string][]byte{"model.onnx": b, "eval/golden.csv": shared}, Meta{Parents: []uint64{1}})
	if !slices.Equal(v2.Parents, []uint64{1}) {
		t.Errorf("v2 parents %v, want [1]", v2.Parents)
	}

	f.mu.Lock()
	f.inUse[1] = "desired by 3 agents"
	f.mu.Unlock()
	if err := f.reg.Delete(ctx, "m", 1); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "desired by 3 agents") {
		t.Fatalf("Delete of a version in use = %v, want ErrInUse with the reason", err)
	}
	f.mu.Lock()
	delete(f.inUse, 1)
	f.mu.Unlock()
	f.clock.Advance(time.Second)
	if err := f.reg.Delete(ctx, "m", 1); err != nil {
		t.Fatal(err)
	}
	if v, err := f.reg.Version(ctx, "m", 1); err != nil || v.State != StateDeleted {
		t.Fatalf("after Delete, v1 = %+v, %v; want deleted", v, err)
	}
	if _, _, err := f.reg.OpenFile(ctx, "m", 1, "model.onnx"); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenFile of a deleted version = %v, want ErrNotFound", err)
	}
	if ms, _ := f.reg.Models(ctx); len(ms) != 1 || ms[0].Versions != 1 || ms[0].Latest != 2 {
		t.Errorf("Models after delete = %+v, want 1 active version, latest 2", ms)
	}

	// Within the grace period nothing goes.
	if gone, err := f.reg.GC(ctx); err != nil || len(gone) != 0 {
		t.Fatalf("GC within grace = %v, %v", gone, err)
	}
	f.clock.Advance(2 * time.Hour)
	gone, err := f.reg.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	manifest1, _ := v1.File("drover.yaml")
	want := []string{digestOf(a), manifest1.SHA256}
	slices.Sort(gone)
	slices.Sort(want)
	if !slices.Equal(gone, want) {
		t.Fatalf("GC collected %v, want v1's model and manifest %v", gone, want)
	}
	for _, fi := range v2.Files {
		if ok, _ := f.blobs.Exists(ctx, fi.SHA256); !ok {
			t.Errorf("GC removed %s of the active v2", fi.Path)
		}
	}
	// A deleted number is never reused; the same content comes back as a
	// new version.
	if v, created := f.publish(t, "m", map[string][]byte{"model.onnx": a, "eval/golden.csv": shared}, Meta{}); !created || v.Version != 3 {
		t.Errorf("republishing deleted content = v%d created %v, want v3 created", v.Version, created)
	}
}

func TestPublishWithTheObjectStoreDown(t *testing.T) {
	db := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := store.Migrate(ctx, db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatal(err)
	}
	u, srv := s3Server(t)
	blobs, err := OpenBlobs(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	reg := New(db.Conn, blobs, Options{Database: db.Name, Logger: slog.New(slog.DiscardHandler)})
	srv.Close()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, _, err = reg.Publish(tctx, "m", Uploads(upload("model.onnx", linear(t, 1))), Meta{})
	if err == nil || !strings.Contains(err.Error(), "store blob") {
		t.Fatalf("publish with the store down = %v, want a blob store error", err)
	}
	t.Logf("the publisher sees: %v", err)
	if n := db.Count(t, "SELECT count() FROM "+Table); n != 0 {
		t.Errorf("%d records after a publish that failed", n)
	}
}

func TestPublishOverS3(t *testing.T) {
	db := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := store.Migrate(ctx, db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatal(err)
	}
	reg := New(db.Conn, s3Store(t), Options{Database: db.Name, Logger: slog.New(slog.DiscardHandler)})
	model := linear(t, 6)
	v, created, err := reg.Publish(ctx, "m", Uploads(upload("model.onnx", model)), Meta{Author: "ci"})
	if err != nil || !created || v.Version != 1 {
		t.Fatalf("publish over S3 = v%d created %v, %v", v.Version, created, err)
	}
	r, _, err := reg.OpenFile(ctx, "m", 1, "model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); !bytes.Equal(got, model) {
		t.Fatalf("read back %d bytes over S3, want the %d published", len(got), len(model))
	}
	if _, created, err := reg.Publish(ctx, "m", Uploads(upload("model.onnx", model)), Meta{}); err != nil || created {
		t.Errorf("republish over S3: created %v, %v; want the existing version", created, err)
	}
}

// TestTwoCollectorsStageAndOneOwnerCommits is the cross-collector shape the
// admin API is to wire: each of two registries (two collectors on one
// database and one shared object store) stages the files it receives, and
// every commit of the model goes to the owner's registry. Numbers stay
// distinct and gap-free.
func TestTwoCollectorsStageAndOneOwnerCommits(t *testing.T) {
	f := newFixture(t)
	other := New(f.db.Conn, f.blobs, Options{Database: f.db.Name, Logger: slog.New(slog.DiscardHandler)})
	owner := f.reg
	const n = 20
	models := make([][]byte, n)
	for i := range models {
		models[i] = linear(t, float32(100+i))
	}
	errs := make([]error, n)
	versions := make([]uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			receiver := []*Registry{owner, other}[i%2]
			fi, err := receiver.Stage(context.Background(), upload("model.onnx", models[i]))
			if err != nil {
				errs[i] = err
				return
			}
			v, _, err := owner.Commit(context.Background(), Commit{Model: "shared", Files: []FileInfo{fi}})
			versions[i], errs[i] = v.Version, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != uint64(i+1) {
			t.Fatalf("versions %v, want 1..%d each once", versions, n)
		}
	}
}
