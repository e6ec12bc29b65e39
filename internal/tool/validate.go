package tool

import (
	"context"
	"errors"
	"fmt"
	"net/url"
)

// AllowedHostsFunc returns the hosts the credential of the resource at path
// may be sent to, from the resource's type. keyhole apply passes one that
// reads the store.
type AllowedHostsFunc func(ctx context.Context, path string) ([]string, error)

// Validate compiles d and checks that its URL's host is among the allowed
// hosts of the resource its auth names, as keyhole apply must before it
// stores a tool. It returns the compiled tool.
func Validate(ctx context.Context, d *Definition, hosts AllowedHostsFunc) (*Tool, error) {
	t, err := Compile(d)
	if err != nil {
		return nil, err
	}
	if t.auth == nil {
		return t, nil
	}
	if err := CheckAuthHost(ctx, t.auth, t.base, hosts); err != nil {
		return nil, fmt.Errorf("tool %s: %w", d.Name, err)
	}
	return t, nil
}

// CheckAuthHost checks that target may receive the credential of the
// resource auth names.
func CheckAuthHost(ctx context.Context, auth *Auth, target *url.URL,
	hosts AllowedHostsFunc) error {
	if hosts == nil {
		return errors.New("no way to look up the resource's allowed hosts")
	}
	allowed, err := hosts(ctx, auth.Resource)
	if err != nil {
		return fmt.Errorf("auth.resource %s: %w", auth.Resource, err)
	}
	if err := CheckURL(target, allowed); err != nil {
		return fmt.Errorf("auth.resource %s: %w", auth.Resource, err)
	}
	return nil
}

// ValidateToolset checks a toolset's name and that every tool it lists
// exists, as reported by toolExists.
func ValidateToolset(s *Toolset, toolExists func(name string) bool) error {
	var errs []error
	if err := CheckName(s.Name); err != nil {
		errs = append(errs, err)
	}
	if len(s.Tools) == 0 {
		errs = append(errs, errors.New("tools: list at least one tool"))
	}
	seen := map[string]bool{}
	for _, name := range s.Tools {
		switch {
		case seen[name]:
			errs = append(errs, fmt.Errorf("tools: %s is listed twice", name))
		case toolExists != nil && !toolExists(name):
			errs = append(errs, fmt.Errorf("tools: no tool named %s", name))
		}
		seen[name] = true
	}
	if len(errs) > 0 {
		return fmt.Errorf("toolset %s: %w", s.Name, errors.Join(errs...))
	}
	return nil
}

// CheckName reports whether name is a valid tool, toolset or route name.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("name %q: use letters, digits, _ and - (at most 64, starting "+
			"with a letter)", name)
	}
	return nil
}

// CheckAuth checks that an auth section names a resource and exactly one
// way to send its credential; where prefixes messages ("auth").
func CheckAuth(where string, a *Auth) error {
	if a == nil {
		return fmt.Errorf("%s: missing", where)
	}
	return checkAuth(where, a)
}
