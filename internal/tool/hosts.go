package tool

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// ErrHostNotAllowed is wrapped by every error that refuses to send a
// credential to a host.
var ErrHostNotAllowed = errors.New("host not allowed")

// CheckURL reports whether a credential whose resource allows the given
// hosts may be sent to u. It refuses, wrapping [ErrHostNotAllowed]:
//   - a scheme other than https, except http to a loopback host (localhost,
//     127.0.0.0/8, ::1) that an allowed entry names without a wildcard;
//   - user information in the URL;
//   - a host that is not in canonical form (upper case, a trailing dot, an
//     IP address written in a form other than its plain one, a zone);
//   - a host no entry matches.
//
// An entry is a host name ("api.stripe.com"), an IP address, either with an
// optional port ("127.0.0.1:8080"), or a wildcard ("*.example.com") that
// matches any name below the domain but not the domain itself.
func CheckURL(u *url.URL, allowed []string) error {
	if u.User != nil {
		return hostErr(u.Host, "URLs with user information are refused")
	}
	host, port := u.Hostname(), u.Port()
	if err := checkCanonical(host); err != nil {
		return err
	}
	if port == "" {
		port = defaultPort(u.Scheme)
	}

	entry, ok := matchHost(host, port, allowed)
	switch {
	case !ok:
		return hostErr(host, "it is not in the resource's allowed_hosts")
	case u.Scheme == "https":
		return nil
	case u.Scheme != "http":
		return hostErr(host, fmt.Sprintf("scheme %q is not https", u.Scheme))
	case !IsLoopback(host) || strings.HasPrefix(entry, "*."):
		return hostErr(host, "plain http is allowed only to loopback hosts named in allowed_hosts")
	}
	return nil
}

func hostErr(host, why string) error {
	return fmt.Errorf("%w: %s: %s", ErrHostNotAllowed, host, why)
}

func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}

// checkCanonical refuses host names that could be read two ways.
func checkCanonical(host string) error {
	if host == "" {
		return hostErr("(empty)", "the URL has no host")
	}
	if strings.ContainsAny(host, "%") {
		return hostErr(host, "zones and escapes in hosts are refused")
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.String() != host || addr.Is4In6() {
			return hostErr(host, "write the IP address in its plain form")
		}
		return nil
	}
	if host != strings.ToLower(host) || strings.HasSuffix(host, ".") {
		return hostErr(host, "write the host name in lower case without a trailing dot")
	}
	for _, label := range strings.Split(host, ".") {
		if !validLabel(label) {
			return hostErr(host, "not a valid host name")
		}
	}
	last := host[strings.LastIndexByte(host, '.')+1:]
	if isDigits(last) || strings.HasPrefix(last, "0x") {
		return hostErr(host, "numeric host names other than plain IP addresses are refused")
	}
	return nil
}

func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// matchHost returns the first allowed entry that matches host and port.
func matchHost(host, port string, allowed []string) (string, bool) {
	for _, entry := range allowed {
		eh, ep := splitEntry(strings.ToLower(strings.TrimSpace(entry)))
		if ep != "" && ep != port {
			continue
		}
		if eh == host {
			return entry, true
		}
		if suffix, ok := strings.CutPrefix(eh, "*."); ok && strings.HasSuffix(host, "."+suffix) {
			return entry, true
		}
	}
	return "", false
}

// splitEntry splits "host:port" and "[v6]:port" entries; a bare IPv6
// address is a host without a port.
func splitEntry(entry string) (host, port string) {
	if h, p, err := net.SplitHostPort(entry); err == nil {
		return h, p
	}
	return strings.Trim(entry, "[]"), ""
}

// IsLoopback reports whether host is "localhost" or a loopback IP address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}
