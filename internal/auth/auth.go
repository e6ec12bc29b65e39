// Package auth issues and checks keyhole's API tokens and their scopes.
//
// A token is "kh_" followed by 43 characters of URL-safe base64 holding 32
// random bytes. The server stores only its SHA-256 hash: the token is shown
// once, when it is created, and cannot be recovered. Tokens this long need no
// slow hash, since they cannot be guessed.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Prefix starts every keyhole token, so that secret scanners and people can
// tell one at a glance.
const Prefix = "kh_"

// Scopes a token may hold.
const (
	// Admin allows everything in the token's workspace. In the default
	// workspace it also allows managing other workspaces.
	Admin          = "admin"
	ResourcesRead  = "resources:read"  // resource metadata, secrets masked
	ResourcesWrite = "resources:write" // create, replace, delete resources
	SecretsReveal  = "secrets:reveal"  // show secret values; audited
	AuditRead      = "audit:read"      // read and verify the audit log
	ConfigRead     = "config:read"     // read tools, toolsets, routes, types
	ConfigWrite    = "config:write"    // apply and delete configuration
	ToolsCall      = "tools:call"      // call any tool of the workspace
	JobsRead       = "jobs:read"       // list jobs, read logs and results
	JobsRun        = "jobs:run"        // start and cancel jobs
	MCPPrefix      = "mcp:"            // mcp:TOOLSET: use one toolset over MCP
)

// Known lists the fixed scopes, for help texts and validation.
var Known = []string{Admin, ResourcesRead, ResourcesWrite, SecretsReveal, AuditRead,
	ConfigRead, ConfigWrite, ToolsCall, JobsRead, JobsRun}

// implied lists scopes that come with another.
var implied = map[string][]string{
	ResourcesWrite: {ResourcesRead},
	ConfigWrite:    {ConfigRead},
	JobsRun:        {JobsRead},
}

var toolsetName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// CheckScope reports whether s is a scope keyhole knows.
func CheckScope(s string) error {
	if slices.Contains(Known, s) {
		return nil
	}
	if name, ok := strings.CutPrefix(s, MCPPrefix); ok && toolsetName.MatchString(name) {
		return nil
	}
	return fmt.Errorf("unknown scope %q: use one of %s, or mcp:TOOLSET", s, strings.Join(Known, ", "))
}

// Allows reports whether a token holding scopes may do what need names.
func Allows(scopes []string, need string) bool {
	for _, s := range scopes {
		if s == Admin || s == need || slices.Contains(implied[s], need) {
			return true
		}
	}
	return false
}

// NewToken returns a fresh token and the hash to store for it.
func NewToken() (token string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails: crypto/rand panics rather than return an error
	token = Prefix + base64.RawURLEncoding.EncodeToString(b)
	clear(b)
	return token, Hash(token)
}

// Hash returns the stored form of a token.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// LooksLikeToken reports whether s has the shape of a keyhole token.
func LooksLikeToken(s string) bool {
	return strings.HasPrefix(s, Prefix) && len(s) == len(Prefix)+43
}

// NewID returns a random identifier with a prefix, such as tok_3kq9….
func NewID(prefix string) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}
