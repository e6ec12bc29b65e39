package oidc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyhole/keyhole/internal/secrets"
	"github.com/keyhole/keyhole/internal/store"
)

// Defaults for [Options].
const (
	DefaultTTL          = 5 * time.Minute
	DefaultMaxTTL       = time.Hour
	DefaultPublishGrace = 5 * time.Minute
	DefaultRefresh      = 30 * time.Second
)

// horizonStep is how far past a token's expiry a key's sign horizon is
// moved when it must be extended, so that the database is written about
// once per step rather than once per token.
const horizonStep = 5 * time.Minute

// ErrInvalid is wrapped by errors about bad arguments to [Issuer.Issue].
var ErrInvalid = errors.New("oidc: invalid token request")

// ErrKeysUnavailable is wrapped by errors that come from the key service or
// the database while a signing key is loaded or made: no token can be
// signed until they are back.
var ErrKeysUnavailable = errors.New("oidc: signing keys unavailable")

// JobClaims say who a token speaks for.
type JobClaims struct {
	Workspace string // workspace name; required
	JobID     string // the job's ID
	JobKind   string // script, agent, tool, …; required
	JobName   string // the script's, agent's or tool's name; required
	Trigger   string // what started the job, e.g. manual or webhook:stripe
}

// Subject returns the token subject for c:
// "workspace:<workspace>:<kind>:<name>".
func (c JobClaims) Subject() string {
	return "workspace:" + c.Workspace + ":" + c.JobKind + ":" + c.JobName
}

// Check reports what is wrong with c, if anything.
func (c JobClaims) Check() error {
	for _, f := range []struct{ name, value string }{
		{"workspace", c.Workspace}, {"job kind", c.JobKind}, {"job name", c.JobName},
	} {
		if f.value == "" {
			return fmt.Errorf("%w: the %s is empty", ErrInvalid, f.name)
		}
		if strings.Contains(f.value, ":") {
			return fmt.Errorf("%w: the %s %q holds a colon, which would make the "+
				"subject ambiguous", ErrInvalid, f.name, f.value)
		}
	}
	for _, v := range []string{c.Workspace, c.JobID, c.JobKind, c.JobName, c.Trigger} {
		if strings.ContainsFunc(v, isControl) {
			return fmt.Errorf("%w: a job claim holds a control character", ErrInvalid)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Options tunes an [Issuer]. A nil *Options means defaults.
type Options struct {
	// DefaultTTL is the lifetime of a token issued with ttl 0;
	// DefaultTTL (5 minutes) when zero.
	DefaultTTL time.Duration

	// MaxTTL is the longest lifetime Issue accepts; DefaultMaxTTL (1 hour)
	// when zero.
	MaxTTL time.Duration

	// PublishGrace is how long a retired key stays published after the
	// last token it signed expires, for verifiers whose clocks run behind
	// or that allow leeway on exp; DefaultPublishGrace when zero.
	PublishGrace time.Duration

	// Refresh is how long a server signs with the key it loaded before it
	// looks for a newer one made by another server; DefaultRefresh when
	// zero.
	Refresh time.Duration

	// PreviousKEK, if set, is tried when the key service cannot unwrap a
	// signing key: the service the keys were wrapped by before a move to
	// another key service. [Issuer.Rewrap] ends the need for it.
	PreviousKEK secrets.KeyService

	// Now is the clock; time.Now when nil. Tests move it.
	Now func() time.Time

	// Logger receives the issuer's logs; nil discards them.
	Logger *slog.Logger
}

// Issuer signs job identity tokens and publishes the keys that verify
// them. It is safe for concurrent use, and several Issuers on one
// PostgreSQL database share their keys.
type Issuer struct {
	db   *store.DB
	kek  secrets.KeyService
	url  string
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	active   *signingKey // nil until loaded
	loadedAt time.Time
}

// signingKey is the active key, unwrapped, as one server holds it.
type signingKey struct {
	kid     string
	signer  jose.Signer
	horizon time.Time // the sign horizon this server knows is stored
}

// NewIssuer returns an Issuer whose tokens name issuerURL as their issuer.
// issuerURL is keyhole's external URL as relying parties reach it, such as
// https://keyhole.example.com; the discovery document and key set are
// served under it. Private keys are wrapped by kek.
func NewIssuer(db *store.DB, kek secrets.KeyService, issuerURL string,
	opts *Options) (*Issuer, error) {
	u, err := checkIssuerURL(issuerURL)
	if err != nil {
		return nil, err
	}
	if db == nil || kek == nil {
		return nil, errors.New("oidc: the issuer needs a database and a key service")
	}
	o := withDefaults(opts)
	if o.DefaultTTL > o.MaxTTL {
		return nil, fmt.Errorf("oidc: default token lifetime %s is longer than the "+
			"maximum %s", o.DefaultTTL, o.MaxTTL)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Issuer{db: db, kek: kek, url: u, opts: o, log: log}, nil
}

func withDefaults(opts *Options) Options {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.DefaultTTL <= 0 {
		o.DefaultTTL = DefaultTTL
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.PublishGrace <= 0 {
		o.PublishGrace = DefaultPublishGrace
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// checkIssuerURL returns the issuer URL without a trailing slash, or says
// why it cannot be one.
func checkIssuerURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("oidc: issuer URL %q must be an absolute http or https URL "+
			"without credentials, query or fragment, such as https://keyhole.example.com",
			raw)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// URL returns the issuer URL, the value of the iss claim.
func (i *Issuer) URL() string { return i.url }

// Issue returns a signed token for the job claims, for audience, valid for
// ttl (the default lifetime when 0). It fails with [ErrInvalid] for bad
// arguments and with [ErrKeysUnavailable] when the signing key cannot be
// loaded: there is no fallback to an unsigned or stale token.
func (i *Issuer) Issue(ctx context.Context, claims JobClaims, audience string,
	ttl time.Duration) (string, error) {
	if err := claims.Check(); err != nil {
		return "", err
	}
	if err := checkAudience(audience); err != nil {
		return "", err
	}
	if ttl == 0 {
		ttl = i.opts.DefaultTTL
	}
	if ttl < 0 || ttl > i.opts.MaxTTL {
		return "", fmt.Errorf("%w: token lifetime %s is outside (0, %s]", ErrInvalid,
			ttl, i.opts.MaxTTL)
	}

	now := i.opts.Now().Truncate(time.Second)
	exp := now.Add(ttl)
	key, err := i.keyFor(ctx, exp)
	if err != nil {
		return "", err
	}
	tok, err := jwt.Signed(key.signer).Claims(tokenClaims(i.url, claims, audience, now,
		exp)).Serialize()
	if err != nil {
		return "", fmt.Errorf("oidc: sign token: %w", err)
	}
	i.log.DebugContext(ctx, "oidc: issued token", "workspace", claims.Workspace,
		"job_id", claims.JobID, "audience", audience, "kid", key.kid, "ttl", ttl)
	return tok, nil
}

func checkAudience(aud string) error {
	if aud == "" || len(aud) > 512 || strings.ContainsFunc(aud, isControl) ||
		strings.ContainsAny(aud, " \t") {
		return fmt.Errorf("%w: audience %q must be one non-empty word such as vault or "+
			"sts.amazonaws.com", ErrInvalid, aud)
	}
	return nil
}

// Claims is the payload of a job identity token.
type Claims struct {
	jwt.Claims
	Workspace string `json:"workspace"`
	JobID     string `json:"job_id"`
	JobKind   string `json:"job_kind"`
	JobName   string `json:"job_name"`
	Trigger   string `json:"trigger"`
}

func tokenClaims(iss string, c JobClaims, aud string, now, exp time.Time) Claims {
	return Claims{
		Claims: jwt.Claims{
			Issuer:    iss,
			Subject:   c.Subject(),
			Audience:  jwt.Audience{aud},
			Expiry:    jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        rand.Text(),
		},
		Workspace: c.Workspace,
		JobID:     c.JobID,
		JobKind:   c.JobKind,
		JobName:   c.JobName,
		Trigger:   c.Trigger,
	}
}
