// Package webhook verifies the signatures of incoming webhook deliveries
// before keyhole turns them into jobs.
//
// Two schemes are supported:
//
//   - [HMAC]: a header (X-Signature by default) holding "sha256=<hex>", the
//     HMAC-SHA256 of the raw request body under a shared secret.
//   - [Stripe]: the Stripe-Signature header, "t=<unix seconds>,v1=<hex>[,…]",
//     where v1 is the HMAC-SHA256 of "<t>.<body>"; deliveries whose timestamp
//     lies outside a tolerance are refused, which stops replays.
//
// Both compare digests in constant time. Every error wraps one of
// [ErrSignatureMissing], [ErrSignatureMalformed], [ErrSignatureMismatch] or
// [ErrSignatureExpired], so callers can answer with errors.Is; no error
// contains the secret or the expected digest.
//
// Verify the raw body exactly as received: re-encoding parsed JSON changes
// the bytes and breaks every signature.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The errors every verification failure wraps.
var (
	// ErrSignatureMissing means the signature header was absent or empty.
	ErrSignatureMissing = errors.New("webhook: signature header missing")
	// ErrSignatureMalformed means the header could not be parsed.
	ErrSignatureMalformed = errors.New("webhook: signature header malformed")
	// ErrSignatureMismatch means no signature matched the body and secret.
	ErrSignatureMismatch = errors.New("webhook: signature does not match")
	// ErrSignatureExpired means a timestamped signature lies outside the
	// tolerance: a replay or a badly wrong clock.
	ErrSignatureExpired = errors.New("webhook: signature timestamp outside tolerance")
)

// Verifier checks that a delivery's headers sign its raw body.
type Verifier interface {
	Verify(h http.Header, body []byte) error
}

// DefaultHMACHeader is the header [HMAC] reads when none is set.
const DefaultHMACHeader = "X-Signature"

// HMAC verifies "sha256=<hex>" HMAC-SHA256 signatures over the raw body.
type HMAC struct {
	// Secret is the shared signing secret.
	Secret []byte
	// Header names the signature header. Empty means X-Signature.
	Header string
}

// Verify implements [Verifier].
func (v HMAC) Verify(h http.Header, body []byte) error {
	name := v.Header
	if name == "" {
		name = DefaultHMACHeader
	}
	value := strings.TrimSpace(h.Get(name))
	if value == "" {
		return fmt.Errorf("%w: expected %s: sha256=<hex>", ErrSignatureMissing, name)
	}

	algo, digest, ok := strings.Cut(value, "=")
	if !ok || !strings.EqualFold(algo, "sha256") {
		return fmt.Errorf("%w: %s must be sha256=<hex>", ErrSignatureMalformed, name)
	}
	got, err := decodeDigest(digest)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrSignatureMalformed, name, err)
	}

	if !hmac.Equal(got, sign(v.Secret, body)) {
		return fmt.Errorf("%w: %s", ErrSignatureMismatch, name)
	}
	return nil
}

// StripeHeader is the header Stripe signs its webhook deliveries in.
const StripeHeader = "Stripe-Signature"

// DefaultStripeTolerance is how old a Stripe signature may be when
// Stripe.Tolerance is zero.
const DefaultStripeTolerance = 300 * time.Second

// Stripe verifies the Stripe-Signature scheme.
type Stripe struct {
	// Secret is the endpoint's signing secret ("whsec_…").
	Secret []byte
	// Tolerance is the largest accepted distance between the signed
	// timestamp and now, in either direction. Zero means 300 seconds.
	Tolerance time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Verify implements [Verifier].
func (v Stripe) Verify(h http.Header, body []byte) error {
	value := strings.TrimSpace(h.Get(StripeHeader))
	if value == "" {
		return fmt.Errorf("%w: expected %s: t=<unix>,v1=<hex>",
			ErrSignatureMissing, StripeHeader)
	}
	ts, sigs, err := parseStripe(value)
	if err != nil {
		return err
	}

	// Check the digest first so that an expired but genuine delivery is
	// told apart from a forged one.
	signed := append([]byte(strconv.FormatInt(ts, 10)+"."), body...)
	if !anyEqual(sigs, sign(v.Secret, signed)) {
		return fmt.Errorf("%w: no v1 signature in %s matches",
			ErrSignatureMismatch, StripeHeader)
	}
	return v.checkAge(ts)
}

func (v Stripe) checkAge(ts int64) error {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tolerance := v.Tolerance
	if tolerance <= 0 {
		tolerance = DefaultStripeTolerance
	}

	age := now().Sub(time.Unix(ts, 0))
	if age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: signed %s ago, tolerance %s",
			ErrSignatureExpired, age.Truncate(time.Second), tolerance)
	}
	return nil
}

// parseStripe splits "t=…,v1=…,v1=…,v0=…" into the timestamp and the v1
// digests; other schemes are ignored, as Stripe documents.
func parseStripe(value string) (int64, [][]byte, error) {
	var ts int64 = -1
	var sigs [][]byte
	for part := range strings.SplitSeq(value, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return 0, nil, fmt.Errorf("%w: %q is not key=value", ErrSignatureMalformed, part)
		}
		switch key {
		case "t":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				return 0, nil, fmt.Errorf("%w: t=%q is not a unix time",
					ErrSignatureMalformed, val)
			}
			ts = n
		case "v1":
			d, err := decodeDigest(val)
			if err != nil {
				return 0, nil, fmt.Errorf("%w: v1: %v", ErrSignatureMalformed, err)
			}
			sigs = append(sigs, d)
		}
	}

	if ts < 0 || len(sigs) == 0 {
		return 0, nil, fmt.Errorf("%w: %s needs t= and at least one v1=",
			ErrSignatureMalformed, StripeHeader)
	}
	return ts, sigs, nil
}

// SignStripe returns a Stripe-Signature header value for body at time t.
// keyhole uses it to sign test deliveries; senders other than Stripe may use
// it too.
func SignStripe(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := sign(secret, append([]byte(ts+"."), body...))
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac)
}

// SignHMAC returns an X-Signature header value ("sha256=<hex>") for body.
func SignHMAC(secret, body []byte) string {
	return "sha256=" + hex.EncodeToString(sign(secret, body))
}

func sign(secret, data []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(data)
	return m.Sum(nil)
}

func decodeDigest(s string) ([]byte, error) {
	d, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("digest is not hex")
	}
	if len(d) != sha256.Size {
		return nil, fmt.Errorf("digest is %d bytes, want %d", len(d), sha256.Size)
	}
	return d, nil
}

// anyEqual compares want against every candidate in constant time each, and
// does not stop at the first match so timing reveals nothing about which.
func anyEqual(candidates [][]byte, want []byte) bool {
	match := false
	for _, c := range candidates {
		if hmac.Equal(c, want) {
			match = true
		}
	}
	return match
}
