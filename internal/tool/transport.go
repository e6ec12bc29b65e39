package tool

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// TransportOptions tunes [NewTransport]. The zero value is right for
// production.
type TransportOptions struct {
	// RootCAs replaces the system roots; tests use it to trust a local
	// TLS server.
	RootCAs *x509.CertPool

	// MaxIdleConnsPerHost bounds kept-alive connections to one upstream;
	// 64 when zero.
	MaxIdleConnsPerHost int
}

// NewTransport returns the HTTP transport keyhole sends credentials through.
// It never uses a proxy from the environment, requires TLS 1.2 or later, and
// dials through a guard against DNS tricks: a host name may not resolve to a
// loopback, link-local, unspecified or multicast address (the address
// actually dialled is checked, so a rebinding answer is caught), and an IP
// literal may not be link-local, unspecified or multicast. Loopback is
// reached only through "localhost" or a loopback literal, which [CheckURL]
// lets through only when allowed_hosts names them. Share one transport
// between calls so connections are kept alive.
func NewTransport(opts *TransportOptions) *http.Transport {
	if opts == nil {
		opts = &TransportOptions{}
	}
	perHost := opts.MaxIdleConnsPerHost
	if perHost == 0 {
		perHost = 64
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               nil,
		DialContext:         guardedDial(dialer),
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs},
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        4 * perHost,
		MaxIdleConnsPerHost: perHost,
		IdleConnTimeout:     90 * time.Second,
	}
}

// errBadAddress is returned when the dial guard refuses every address.
var errBadAddress = errors.New("address refused")

func guardedDial(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		ips, err := resolve(ctx, host)
		if err != nil {
			return nil, err
		}

		var firstErr error
		for _, ip := range ips {
			if !dialable(host, ip) {
				continue
			}
			conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return conn, nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("dial %s: %w: it resolves only to local or reserved addresses",
				host, errBadAddress)
		}
		return nil, firstErr
	}
}

// resolve returns the addresses of host, which may be an IP literal.
func resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	return ips, nil
}

// dialable reports whether the guard lets a connection for host go to ip.
func dialable(host string, ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	if ip.IsLoopback() {
		return IsLoopback(host)
	}
	return host != "localhost"
}

// sameOriginRedirects is an http.Client CheckRedirect that follows at most
// five redirects, and only to the scheme, host and port of the first
// request; any other redirect is returned to the caller as the response, so
// a credential never follows one to another host.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if len(via) >= 5 || req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return http.ErrUseLastResponse
	}
	return nil
}
