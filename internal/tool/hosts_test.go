package tool

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"testing"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		allowed []string
		ok      bool
	}{
		{"https://api.stripe.com/v1/x", []string{"api.stripe.com"}, true},
		{"https://api.stripe.com/v1/x", []string{"API.Stripe.com"}, true},
		{"https://api.stripe.com:443/v1/x", []string{"api.stripe.com:443"}, true},
		{"https://api.stripe.com/v1/x", []string{"api.stripe.com:8443"}, false},
		{"https://files.stripe.com/x", []string{"*.stripe.com"}, true},
		{"https://a.b.stripe.com/x", []string{"*.stripe.com"}, true},
		{"https://stripe.com/x", []string{"*.stripe.com"}, false},
		{"https://evilstripe.com/x", []string{"*.stripe.com"}, false},
		{"https://api.stripe.com.evil.example/x", []string{"api.stripe.com"}, false},
		{"https://api.stripe.com./x", []string{"api.stripe.com"}, false},
		{"https://API.STRIPE.COM/x", []string{"api.stripe.com"}, false},
		{"https://user@api.stripe.com/x", []string{"api.stripe.com"}, false},
		{"http://api.stripe.com/x", []string{"api.stripe.com"}, false},
		{"ftp://api.stripe.com/x", []string{"api.stripe.com"}, false},
		{"http://127.0.0.1:8080/x", []string{"127.0.0.1:8080"}, true},
		{"http://127.0.0.1:8080/x", []string{"127.0.0.1"}, true},
		{"http://localhost:9/x", []string{"localhost"}, true},
		{"http://[::1]:9/x", []string{"[::1]:9"}, true},
		{"http://[::1]:9/x", []string{"::1"}, true},
		{"http://127.0.0.1:8080/x", []string{"127.0.0.1:9999"}, false},
		{"http://127.0.0.1/x", []string{"*.0.0.1"}, false},
		{"http://10.0.0.5/x", []string{"10.0.0.5"}, false},
		{"https://10.0.0.5/x", []string{"10.0.0.5"}, true},
		{"http://2130706433/x", []string{"2130706433"}, false},
		{"http://0x7f000001/x", []string{"0x7f000001"}, false},
		{"http://127.1/x", []string{"127.1"}, false},
		{"http://[::ffff:127.0.0.1]/x", []string{"::ffff:127.0.0.1"}, false},
		{"http://[fe80::1%25eth0]/x", []string{"fe80::1%eth0"}, false},
		{"https://0177.0.0.1/x", []string{"0177.0.0.1"}, false},
		{"https://api.stripe.com/x", nil, false},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatalf("parse %s: %v", tt.url, err)
		}
		err = CheckURL(u, tt.allowed)
		if (err == nil) != tt.ok {
			t.Errorf("CheckURL(%s, %v) = %v, want ok=%v", tt.url, tt.allowed, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrHostNotAllowed) {
			t.Errorf("CheckURL(%s) error %v does not wrap ErrHostNotAllowed", tt.url, err)
		}
	}
}

func TestDialGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host, ip string
		ok       bool
	}{
		{"api.stripe.com", "3.18.12.63", true},
		{"api.stripe.com", "10.1.2.3", true},
		{"api.stripe.com", "127.0.0.1", false}, // rebinding to loopback
		{"api.stripe.com", "::1", false},
		{"api.stripe.com", "169.254.169.254", false}, // cloud metadata
		{"api.stripe.com", "0.0.0.0", false},
		{"api.stripe.com", "::ffff:127.0.0.1", false},
		{"localhost", "127.0.0.1", true},
		{"localhost", "10.1.2.3", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"0.0.0.0", "0.0.0.0", false},
		{"169.254.169.254", "169.254.169.254", false},
		{"224.0.0.1", "224.0.0.1", false},
	}
	for _, tt := range tests {
		if got := dialable(tt.host, netip.MustParseAddr(tt.ip)); got != tt.ok {
			t.Errorf("dialable(%s, %s) = %v, want %v", tt.host, tt.ip, got, tt.ok)
		}
	}

	dial := guardedDial(&net.Dialer{})
	for _, addr := range []string{"0.0.0.0:80", "169.254.169.254:80", "[::]:80"} {
		if _, err := dial(context.Background(), "tcp", addr); !errors.Is(err, errBadAddress) {
			t.Errorf("dial %s: %v, want refused", addr, err)
		}
	}
}
