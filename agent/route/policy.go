package route

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
	// Canary routes Percent of the requests that name no version to
	// Version (sticky by request id); the rest go to the default version.
	Canary *Split
	// Shadow copies Percent of the requests to Version off the request
	// path and compares its answers with the primary's.
	Shadow *Split
}

// Split sends a share of traffic to a version.
type Split struct {
	Version int64   `yaml:"version" json:"version"`
	Percent float64 `yaml:"percent" json:"percent"`
}

// Validate checks the split.
func (s *Split) Validate() error {
	var errs []error
	if s.Version <= 0 {
		errs = append(errs, fmt.Errorf("version: must be positive, got %d", s.Version))
	}
	if !(s.Percent > 0 && s.Percent <= 100) {
		errs = append(errs, fmt.Errorf("percent: must be in (0, 100], got %v", s.Percent))
	}
	return errors.Join(errs...)
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
		Canary   *Split  `yaml:"canary"`
		Shadow   *Split  `yaml:"shadow"`
	}
	// Decode strictly: unknown keys are errors.
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: version policy: want latest, {latest: N} or {specific: [..]}", n.Line)
	}
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if k != "latest" && k != "specific" && k != "canary" && k != "shadow" {
			return fmt.Errorf("line %d: version policy: unknown key %q (want latest, specific, canary or shadow)", n.Content[i].Line, k)
		}
		if (k == "canary" || k == "shadow") && v.Kind == yaml.MappingNode {
			for j := 0; j < len(v.Content); j += 2 {
				if sk := v.Content[j].Value; sk != "version" && sk != "percent" {
					return fmt.Errorf("line %d: version policy: %s: unknown key %q (want version and percent)", v.Content[j].Line, k, sk)
				}
			}
		}
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	if raw.Latest != nil && raw.Specific != nil {
		return fmt.Errorf("line %d: version policy: latest and specific are exclusive", n.Line)
	}
	*p = Policy{Specific: raw.Specific, Canary: raw.Canary, Shadow: raw.Shadow}
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
	m := map[string]any{}
	switch {
	case len(p.Specific) > 0:
		m["specific"] = p.Specific
	case p.Latest > 1:
		m["latest"] = p.Latest
	case p.Canary == nil && p.Shadow == nil:
		return "latest", nil
	}
	if p.Canary != nil {
		m["canary"] = p.Canary
	}
	if p.Shadow != nil {
		m["shadow"] = p.Shadow
	}
	return m, nil
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
	if p.Canary != nil {
		if err := p.Canary.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("canary: %w", err))
		}
	}
	if p.Shadow != nil {
		if err := p.Shadow.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("shadow: %w", err))
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
	s := "latest"
	switch {
	case len(p.Specific) > 0:
		s = fmt.Sprintf("specific %v", p.Specific)
	case p.Latest > 1:
		s = fmt.Sprintf("latest %d", p.Latest)
	}
	if p.Canary != nil {
		s += fmt.Sprintf(", canary v%d %g%%", p.Canary.Version, p.Canary.Percent)
	}
	if p.Shadow != nil {
		s += fmt.Sprintf(", shadow v%d %g%%", p.Shadow.Version, p.Shadow.Percent)
	}
	return s
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
