package deploytest

import (
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// image is what a Dockerfile's last stage says about the container.
type image struct {
	file       string
	stages     []instructions.Stage
	user       string
	entrypoint []string
	exposed    []string
	health     []string
	env        map[string]string
	runs       []string // every RUN of every stage, as written
	copies     []*instructions.CopyCommand
}

// dockerfiles are the images, by the binary their ENTRYPOINT runs.
var dockerfiles = map[string]string{
	"drover-agent":     "agent.Dockerfile",
	"drover-collector": "collector.Dockerfile",
}

// loadImage parses a Dockerfile with BuildKit's parser and its instruction
// parser, as `docker build` does.
func loadImage(t testing.TB, name string) image {
	t.Helper()
	path := deployPath("docker", name)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser warning: %s", path, w.Short)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a build stage and a runtime stage", path, len(stages))
	}
	img := image{file: path, stages: stages, env: map[string]string{}}
	for _, st := range stages {
		for _, c := range st.Commands {
			if r, ok := c.(*instructions.RunCommand); ok {
				img.runs = append(img.runs, strings.Join(r.CmdLine, " "))
			}
		}
	}
	for _, c := range stages[len(stages)-1].Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			img.user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("%s: ENTRYPOINT in shell form: signals would go to the shell, not to the binary", path)
			}
			img.entrypoint = c.CmdLine
		case *instructions.ExposeCommand:
			img.exposed = append(img.exposed, c.Ports...)
		case *instructions.HealthCheckCommand:
			img.health = c.Health.Test
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				img.env[kv.Key] = kv.Value
			}
		case *instructions.CopyCommand:
			img.copies = append(img.copies, c)
		}
	}
	return img
}

func TestDockerfiles(t *testing.T) {
	for bin, file := range dockerfiles {
		t.Run(file, func(t *testing.T) {
			img := loadImage(t, file)
			where := "deploy/docker/" + file

			// Non-root, by number: Kubernetes' runAsNonRoot can only check
			// a numeric user.
			uid, _, _ := strings.Cut(img.user, ":")
			if n, err := strconv.Atoi(uid); err != nil || n == 0 {
				t.Errorf("%s: USER %q, want a numeric non-root uid", where, img.user)
			}

			// The entrypoint runs the binary with flags it has.
			if len(img.entrypoint) == 0 || !strings.HasSuffix(img.entrypoint[0], "/"+bin) {
				t.Fatalf("%s: ENTRYPOINT %q does not run %s", where, img.entrypoint, bin)
			}
			in := parseArgs(t, where+" ENTRYPOINT", img.entrypoint)

			// EXPOSE lists exactly the ports it listens on beyond loopback.
			var want []string
			for _, l := range in.listeners(t, where) {
				if !l.loopback {
					want = append(want, strconv.Itoa(l.port)+"/"+l.protocol)
				}
			}
			var got []string
			for _, p := range img.exposed {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				got = append(got, p)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: EXPOSE %v, but %s listens on %v beyond loopback", where, got, bin, want)
			}

			// HEALTHCHECK GETs an open health route on the right port.
			if len(img.health) < 2 || img.health[0] != "CMD" {
				t.Fatalf("%s: HEALTHCHECK %q, want an exec-form CMD", where, img.health)
			}
			var target *url.URL
			for _, a := range img.health[1:] {
				if u, err := url.Parse(a); err == nil && u.Scheme == "http" {
					target = u
				}
			}
			if target == nil {
				t.Fatalf("%s: HEALTHCHECK %q names no http:// URL", where, img.health)
			}
			if target.Hostname() != "127.0.0.1" && target.Hostname() != "localhost" {
				t.Errorf("%s: HEALTHCHECK checks %s, want the container's own loopback", where, target.Host)
			}
			if !slices.Contains(img.health, "-f") && !slices.Contains(img.health, "-fsS") && !slices.Contains(img.health, "--fail") {
				t.Errorf("%s: HEALTHCHECK %q: curl without -f succeeds on a 503", where, img.health)
			}
			port, _ := strconv.Atoi(target.Port())
			checkHealth(t, where+" HEALTHCHECK", in, port, target.Path)

			// The native libraries: fetched by drover-deps in the build
			// stage into DROVER_CACHE, copied to the same path, found
			// through the same variable at run time.
			cache := img.env["DROVER_CACHE"]
			if cache == "" {
				t.Fatalf("%s: the runtime stage sets no DROVER_CACHE", where)
			}
			var fetched bool
			for _, r := range img.runs {
				if strings.Contains(r, "go run ./shared/cmd/drover-deps") {
					fetched = true
					for _, part := range strings.Split(r, "go run ./shared/cmd/drover-deps")[1:] {
						line, _, _ := strings.Cut(part, ";")
						line, _, _ = strings.Cut(line, "&&")
						parseArgs(t, where+" RUN drover-deps", append([]string{"drover-deps"}, strings.Fields(line)...))
					}
				}
			}
			if !fetched {
				t.Errorf("%s: no RUN fetches the native libraries with go run ./shared/cmd/drover-deps", where)
			}
			buildEnv := map[string]string{}
			for _, c := range img.stages[0].Commands {
				if e, ok := c.(*instructions.EnvCommand); ok {
					for _, kv := range e.Env {
						buildEnv[kv.Key] = kv.Value
					}
				}
			}
			if buildEnv["DROVER_CACHE"] != cache || buildEnv["CGO_ENABLED"] != "1" {
				t.Errorf("%s: the build stage has DROVER_CACHE=%q CGO_ENABLED=%q, want %q and 1", where, buildEnv["DROVER_CACHE"], buildEnv["CGO_ENABLED"], cache)
			}
			copied := map[string]bool{}
			for _, c := range img.copies {
				if c.From != "" {
					for _, s := range c.SourcePaths {
						copied[s] = true
					}
				}
			}
			if !copied[cache] {
				t.Errorf("%s: the runtime stage does not copy %s from the build stage", where, cache)
			}
			wantBins := []string{"/out/" + bin}
			if bin == "drover-collector" {
				// The optimizer runs ONNX Runtime in the collector: the
				// whole cache is fetched, and droverctl comes along.
				wantBins = append(wantBins, "/out/droverctl")
				var all bool
				for _, r := range img.runs {
					if strings.Contains(r, "go run ./shared/cmd/drover-deps;") {
						all = true
					}
				}
				if !all {
					t.Errorf("%s: drover-deps never runs without --only: ONNX Runtime and the engine are both needed", where)
				}
			}
			for _, b := range wantBins {
				if !copied[b] {
					t.Errorf("%s: the runtime stage does not copy %s", where, b)
				}
			}
			for _, b := range wantBins {
				pkg := "./agent/cmd/" + strings.TrimPrefix(b, "/out/")
				if b != "/out/drover-agent" {
					pkg = "./collector/cmd/" + strings.TrimPrefix(b, "/out/")
				}
				var built bool
				for _, r := range img.runs {
					if strings.Contains(r, "-o "+b+" "+pkg) {
						built = true
					}
				}
				if !built {
					t.Errorf("%s: no RUN builds %s from %s", where, b, pkg)
				}
				if _, err := os.Stat(repoRoot + "/" + strings.TrimPrefix(pkg, "./") + "/main.go"); err != nil {
					t.Errorf("%s: %s: %v", where, pkg, err)
				}
			}
		})
	}
}
