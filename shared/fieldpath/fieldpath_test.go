package fieldpath

import (
	"errors"
	"io/fs"
	"testing"
)

func TestPrefix(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want string
	}{
		"nil":         {nil, ""},
		"field":       {errors.New("max_concurrent: must be >= 1, got 0"), "jobs.max_concurrent: must be >= 1, got 0"},
		"nested path": {errors.New("command.argv[1]: bad"), "jobs.command.argv[1]: bad"},
		"no field":    {errors.New("latest and specific are exclusive"), "jobs: latest and specific are exclusive"},
		"quoted":      {errors.New(`"x y": not a name`), `jobs: "x y": not a name`},
		"joined": {errors.Join(errors.New("a: 1"), errors.Join(errors.New("b.c: 2"), nil, errors.New("three"))),
			"jobs.a: 1\njobs.b.c: 2\njobs: three"},
		"lines": {errors.New("canary: x\npercent: y"), "jobs.canary: x\njobs.percent: y"},
	} {
		t.Run(name, func(t *testing.T) {
			got := Prefix("jobs", tc.err)
			if tc.want == "" {
				if got != nil {
					t.Fatalf("Prefix(nil) = %v", got)
				}
				return
			}
			if got == nil || got.Error() != tc.want {
				t.Errorf("Prefix = %q, want %q", got, tc.want)
			}
		})
	}
	// Prefixes nest, and the cause survives.
	err := Prefix("a", Prefix("b", errors.Join(&fs.PathError{Op: "open", Path: "k", Err: fs.ErrNotExist})))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%v does not wrap fs.ErrNotExist", err)
	}
	if want := "a.b: open k: file does not exist"; err.Error() != want {
		t.Errorf("nested = %q, want %q", err, want)
	}
}
