package vaultref

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/keyhole/keyhole/internal/tool"
)

// Defaults for [Settings].
const (
	DefaultJWTMount    = "jwt"
	DefaultAudience    = "vault"
	DefaultMaxCacheTTL = 5 * time.Minute
	LongestCacheTTL    = 24 * time.Hour
)

// Settings are a workspace's Vault settings, as `keyhole workspace vault`
// sets them. They hold nothing secret: keyhole logs in with its own
// identity token, so there is no Vault token to keep.
type Settings struct {
	// Addr is Vault's address, such as https://vault.example.com:8200.
	// Plain http is accepted only for loopback addresses.
	Addr string `json:"addr"`

	// JWTMount is where the JWT auth method is enabled; "jwt" when empty.
	JWTMount string `json:"jwt_mount,omitempty"`

	// Role is the JWT auth role keyhole logs in with.
	Role string `json:"role"`

	// Audience is the aud claim of the identity tokens keyhole presents;
	// it must be among the role's bound_audiences. "vault" when empty.
	Audience string `json:"audience,omitempty"`

	// Namespace is the Vault Enterprise or OpenBao namespace, if any.
	Namespace string `json:"namespace,omitempty"`

	// MaxCacheTTL bounds how long a fetched value stays in memory, besides
	// the Vault token's TTL and the secret's lease; DefaultMaxCacheTTL
	// when zero.
	MaxCacheTTL tool.Duration `json:"max_cache_ttl,omitempty"`

	// CACert is a PEM bundle of the certificate authorities Vault's TLS
	// certificate is checked against, besides the system's.
	CACert string `json:"ca_cert,omitempty"`
}

var (
	mountName = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)
	roleName  = regexp.MustCompile(`^[A-Za-z0-9_.@-]+$`)
)

// Normalize returns s with defaults filled in, or an error saying which
// setting is wrong and how to fix it.
func (s Settings) Normalize() (Settings, error) {
	if err := checkAddr(s.Addr); err != nil {
		return s, err
	}
	s.Addr = strings.TrimSuffix(s.Addr, "/")
	if s.JWTMount == "" {
		s.JWTMount = DefaultJWTMount
	}
	s.JWTMount = strings.Trim(s.JWTMount, "/")
	if s.Audience == "" {
		s.Audience = DefaultAudience
	}
	if s.MaxCacheTTL == 0 {
		s.MaxCacheTTL = tool.Duration(DefaultMaxCacheTTL)
	}

	switch {
	case !mountName.MatchString(s.JWTMount) || hasDots(s.JWTMount):
		return s, fmt.Errorf("vault: jwt mount %q must be a path such as jwt or "+
			"auth-keyhole", s.JWTMount)
	case !roleName.MatchString(s.Role):
		return s, fmt.Errorf("vault: role %q must be a Vault role name such as keyhole",
			s.Role)
	case s.Namespace != "" && (!mountName.MatchString(s.Namespace) || hasDots(s.Namespace)):
		return s, fmt.Errorf("vault: namespace %q must be a path such as team-a", s.Namespace)
	case strings.ContainsAny(s.Audience, " \t\r\n") || len(s.Audience) > 512:
		return s, fmt.Errorf("vault: audience %q must be one word such as vault", s.Audience)
	case s.MaxCacheTTL < 0 || time.Duration(s.MaxCacheTTL) > LongestCacheTTL:
		return s, fmt.Errorf("vault: max cache TTL %s must be between 1s and %s",
			s.MaxCacheTTL, LongestCacheTTL)
	}
	if s.CACert != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(s.CACert)) {
		return s, fmt.Errorf("vault: the CA certificate holds no PEM certificate")
	}
	return s, nil
}

func checkAddr(addr string) error {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		(u.Path != "" && u.Path != "/") {
		return fmt.Errorf("vault: address %q must be a URL such as "+
			"https://vault.example.com:8200, without a path", addr)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && tool.IsLoopback(u.Hostname()):
	case u.Scheme == "http":
		return fmt.Errorf("vault: address %s uses plain http; keyhole reaches Vault only "+
			"over https, except on a loopback address", addr)
	default:
		return fmt.Errorf("vault: address %q must start with https://", addr)
	}
	return nil
}

func hasDots(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// CheckReference checks a Vault reference: the KV version 2 API path of a
// secret, such as kv/data/bot/stripe (the mount, then data, then the
// secret's path). `keyhole resource set --vault` stores it after this
// check.
func CheckReference(ref string) error {
	bad := func(why string) error {
		return fmt.Errorf("vault reference %q is not valid: %s; give the KV version 2 "+
			"API path, such as kv/data/bot/stripe for the secret bot/stripe in the "+
			"kv mount", ref, why)
	}
	switch {
	case ref == "":
		return bad("it is empty")
	case len(ref) > 512:
		return bad("it is longer than 512 bytes")
	case !mountName.MatchString(ref) || hasDots(ref):
		return bad("it must be slash-separated names of letters, digits, '.', '_' and '-'")
	}
	segs := strings.Split(ref, "/")
	for n, seg := range segs {
		if seg == "data" && n > 0 && n < len(segs)-1 {
			return nil
		}
	}
	return bad("it has no data segment between the mount and the secret's path")
}

// ReferenceFor returns the reference under which `keyhole secrets migrate
// --to vault` stores the resource at path: prefix, a KV version 2 data
// path such as kv/data/keyhole, joined with the resource path.
func ReferenceFor(prefix, path string) (string, error) {
	ref := strings.TrimSuffix(prefix, "/") + "/" + path
	if err := CheckReference(ref); err != nil {
		return "", err
	}
	return ref, nil
}
