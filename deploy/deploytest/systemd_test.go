package deploytest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"
)

// hardening are the options every unit must set, with their values.
var hardening = map[string]string{
	"NoNewPrivileges":         "yes",
	"ProtectSystem":           "strict",
	"ProtectHome":             "yes",
	"PrivateTmp":              "yes",
	"PrivateDevices":          "yes",
	"CapabilityBoundingSet":   "",
	"AmbientCapabilities":     "",
	"ProtectKernelTunables":   "yes",
	"ProtectKernelModules":    "yes",
	"ProtectKernelLogs":       "yes",
	"ProtectControlGroups":    "yes",
	"ProtectClock":            "yes",
	"ProtectHostname":         "yes",
	"RestrictNamespaces":      "yes",
	"RestrictRealtime":        "yes",
	"RestrictSUIDSGID":        "yes",
	"LockPersonality":         "yes",
	"SystemCallArchitectures": "native",
}

// units maps each unit to the binary its ExecStart runs.
var units = map[string]string{
	"drover-agent.service":     "drover-agent",
	"drover-collector.service": "drover-collector",
}

func TestSystemdUnits(t *testing.T) {
	files, err := filepath.Glob(deployPath("systemd", "*.service"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if want := sortedKeys(units); !slices.Equal(names, want) {
		t.Fatalf("deploy/systemd holds %v, want %v", names, want)
	}
	for name, bin := range units {
		t.Run(name, func(t *testing.T) {
			where := "deploy/systemd/" + name
			f, err := os.Open(deployPath("systemd", name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			opts, err := unit.DeserializeOptions(f)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			svc := map[string][]string{}
			sections := map[string]bool{}
			for _, o := range opts {
				sections[o.Section] = true
				if o.Section == "Service" {
					svc[o.Name] = append(svc[o.Name], o.Value)
				}
			}
			for _, s := range []string{"Unit", "Service", "Install"} {
				if !sections[s] {
					t.Errorf("%s: no [%s] section", where, s)
				}
			}
			one := func(key string) string {
				v := svc[key]
				if len(v) != 1 {
					t.Errorf("%s: %s set %d times, want once", where, key, len(v))
					return ""
				}
				return v[0]
			}
			if got := one("Restart"); got != "always" {
				t.Errorf("%s: Restart=%s, want always", where, got)
			}
			if u := one("User"); u == "" || u == "root" {
				t.Errorf("%s: User=%q, want a non-root user", where, u)
			}
			for key, want := range hardening {
				if got, ok := svc[key]; !ok || got[len(got)-1] != want {
					t.Errorf("%s: %s=%q, want %q", where, key, got, want)
				}
			}

			argv := strings.Fields(one("ExecStart"))
			if len(argv) == 0 || filepath.Base(argv[0]) != bin || !filepath.IsAbs(argv[0]) {
				t.Fatalf("%s: ExecStart %q: want the absolute path of %s", where, argv, bin)
			}
			in := parseArgs(t, where+" ExecStart", argv)
			in.listeners(t, where)

			// Where it writes is writable under ProtectSystem=strict.
			rw := strings.Fields(strings.Join(svc["ReadWritePaths"], " "))
			for _, flag := range []string{"data-dir", "model-dir"} {
				if _, ok := in.bin.flags[flag]; !ok {
					continue
				}
				dir := in.last(flag)
				if !filepath.IsAbs(dir) {
					t.Errorf("%s: --%s=%s: want an absolute path (the default is relative to the working directory)", where, flag, dir)
					continue
				}
				if !slices.ContainsFunc(rw, func(p string) bool { return dir == p || strings.HasPrefix(dir, p+"/") }) {
					t.Errorf("%s: --%s=%s is not under ReadWritePaths %v", where, flag, dir, rw)
				}
			}
			for _, env := range svc["Environment"] {
				if k, v, _ := strings.Cut(env, "="); k == "DROVER_CACHE" && !filepath.IsAbs(v) {
					t.Errorf("%s: DROVER_CACHE=%s: want an absolute path", where, v)
				}
			}
		})
	}
}
