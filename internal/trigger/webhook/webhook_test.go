package webhook_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/trigger/webhook"
)

const canarySecret = "whsec_CANARY_5f1e0c2a9b"

var body = []byte(`{"id":"evt_1","type":"invoice.paid"}`)

func header(name, value string) http.Header {
	h := http.Header{}
	if value != "" {
		h.Set(name, value)
	}
	return h
}

func TestHMAC(t *testing.T) {
	t.Parallel()
	secret := []byte(canarySecret)
	good := webhook.SignHMAC(secret, body)
	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		wantErr error
	}{
		{"valid", header("X-Signature", good), body, nil},
		{"uppercase algorithm", header("X-Signature", "SHA256"+good[6:]), body, nil},
		{"missing", header("X-Signature", ""), body, webhook.ErrSignatureMissing},
		{"no algorithm", header("X-Signature", good[7:]), body, webhook.ErrSignatureMalformed},
		{"wrong algorithm", header("X-Signature", "sha1="+good[7:]), body,
			webhook.ErrSignatureMalformed},
		{"not hex", header("X-Signature", "sha256=zz"), body, webhook.ErrSignatureMalformed},
		{"short digest", header("X-Signature", "sha256=abcd"), body,
			webhook.ErrSignatureMalformed},
		{"tampered body", header("X-Signature", good), append(body, ' '),
			webhook.ErrSignatureMismatch},
		{"other secret", header("X-Signature", webhook.SignHMAC([]byte("x"), body)), body,
			webhook.ErrSignatureMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := webhook.HMAC{Secret: secret}.Verify(tc.header, tc.body)
			checkErr(t, err, tc.wantErr)
		})
	}
}

func TestHMACCustomHeader(t *testing.T) {
	t.Parallel()
	v := webhook.HMAC{Secret: []byte("s"), Header: "X-Hub-Signature-256"}
	h := header("X-Hub-Signature-256", webhook.SignHMAC([]byte("s"), body))
	if err := v.Verify(h, body); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestStripe(t *testing.T) {
	t.Parallel()
	secret := []byte(canarySecret)
	now := time.Unix(1_700_000_000, 0)
	sig := func(at time.Time) string { return webhook.SignStripe(secret, body, at) }
	tests := []struct {
		name    string
		header  string
		wantErr error
	}{
		{"valid", sig(now), nil},
		{"valid at tolerance edge", sig(now.Add(-300 * time.Second)), nil},
		{"second signature matches", sig(now) + ",v1=" + strings.Repeat("0", 64), nil},
		{"rotated secret first", "t=1700000000,v1=" + strings.Repeat("ab", 32) +
			"," + sig(now)[13:], nil},
		{"missing", "", webhook.ErrSignatureMissing},
		{"replay beyond tolerance", sig(now.Add(-301 * time.Second)), webhook.ErrSignatureExpired},
		{"far future", sig(now.Add(time.Hour)), webhook.ErrSignatureExpired},
		{"no timestamp", "v1=" + strings.Repeat("ab", 32), webhook.ErrSignatureMalformed},
		{"no v1", "t=1700000000,v0=abc", webhook.ErrSignatureMalformed},
		{"bad timestamp", "t=soon,v1=" + strings.Repeat("ab", 32), webhook.ErrSignatureMalformed},
		{"junk", "garbage", webhook.ErrSignatureMalformed},
		{"forged", "t=1700000000,v1=" + strings.Repeat("ab", 32), webhook.ErrSignatureMismatch},
		{"timestamp swapped", strings.Replace(sig(now), "t=1700000000", "t=1700000001", 1),
			webhook.ErrSignatureMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := webhook.Stripe{Secret: secret, Now: func() time.Time { return now }}
			err := v.Verify(header(webhook.StripeHeader, tc.header), body)
			checkErr(t, err, tc.wantErr)
		})
	}
}

func TestStripeCustomTolerance(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	v := webhook.Stripe{Secret: []byte("s"), Tolerance: 10 * time.Second,
		Now: func() time.Time { return now }}
	h := header(webhook.StripeHeader, webhook.SignStripe([]byte("s"), body, now.Add(-11*time.Second)))
	checkErr(t, v.Verify(h, body), webhook.ErrSignatureExpired)
}

// checkErr asserts err wraps want (or is nil when want is nil) and never
// carries the secret.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) || (want == nil) != (err == nil) {
		t.Fatalf("Verify error = %v, want %v", err, want)
	}
	if err != nil && strings.Contains(err.Error(), canarySecret) {
		t.Fatalf("error %q contains the secret", err)
	}
}
