package registry

import (
	"errors"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Policy says which versions of a model serve. The zero value is "latest":
// the newest loadable version serves alone.
type Policy struct {
	// Latest serves the N newest loadable versions (each addressable); the
	// newest answers requests that name no version. 0 means 1.
	Latest int
	// Specific serves exactly these versions (those that are loadable); the
	// highest answers requests that name no version.
	Specific []int64
}

// UnmarshalYAML accepts `latest`, `{latest: N}` and `{specific: [..]}`.
func (p *Policy) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "latest" {
			*p = Policy{Latest: 1}
			return nil
		}
		return fmt.Errorf("line %d: version policy %q: want latest, {latest: N} or {specific: [..]}", n.Line, n.Value)
	}
	var raw struct {
		Latest   *int    `yaml:"latest"`
		Specific []int64 `yaml:"specific"`
	}
	// Decode strictly: unknown keys are errors.
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: version policy: want latest, {latest: N} or {specific: [..]}", n.Line)
	}
	for i := 0; i < len(n.Content); i += 2 {
		if k := n.Content[i].Value; k != "latest" && k != "specific" {
			return fmt.Errorf("line %d: version policy: unknown key %q (want latest or specific)", n.Content[i].Line, k)
		}
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	if raw.Latest != nil && raw.Specific != nil {
		return fmt.Errorf("line %d: version policy: latest and specific are exclusive", n.Line)
	}
	*p = Policy{Specific: raw.Specific}
	if raw.Latest != nil {
		p.Latest = *raw.Latest
		if p.Latest < 1 {
			return fmt.Errorf("line %d: version policy: latest must be >= 1, got %d", n.Line, p.Latest)
		}
	}
	return nil
}

// MarshalYAML writes the policy in the form UnmarshalYAML reads.
func (p Policy) MarshalYAML() (any, error) {
	if len(p.Specific) > 0 {
		return map[string]any{"specific": p.Specific}, nil
	}
	if p.Latest > 1 {
		return map[string]any{"latest": p.Latest}, nil
	}
	return "latest", nil
}

// Validate checks the policy's values.
func (p Policy) Validate() error {
	var errs []error
	if p.Latest < 0 {
		errs = append(errs, fmt.Errorf("latest: must be >= 1, got %d", p.Latest))
	}
	if p.Latest > 0 && len(p.Specific) > 0 {
		errs = append(errs, errors.New("latest and specific are exclusive"))
	}
	for i, v := range p.Specific {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("specific[%d]: version must be positive, got %d", i, v))
		}
	}
	s := slices.Clone(p.Specific)
	slices.Sort(s)
	if len(slices.Compact(s)) != len(p.Specific) {
		errs = append(errs, errors.New("specific: has duplicate versions"))
	}
	return errors.Join(errs...)
}

func (p Policy) String() string {
	if len(p.Specific) > 0 {
		return fmt.Sprintf("specific %v", p.Specific)
	}
	if p.Latest > 1 {
		return fmt.Sprintf("latest %d", p.Latest)
	}
	return "latest"
}

// desired returns the versions that should serve, highest first, chosen from
// the loadable candidates (sorted highest first).
func (p Policy) desired(candidates []int64) []int64 {
	if len(p.Specific) > 0 {
		var out []int64
		for _, c := range candidates {
			if slices.Contains(p.Specific, c) {
				out = append(out, c)
			}
		}
		return out
	}
	n := max(p.Latest, 1)
	if len(candidates) < n {
		n = len(candidates)
	}
	return slices.Clone(candidates[:n])
}
