package secrets

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	gcsecrets "gocloud.dev/secrets"
	_ "gocloud.dev/secrets/awskms"        // awskms://
	_ "gocloud.dev/secrets/azurekeyvault" // azurekeyvault://
	_ "gocloud.dev/secrets/gcpkms"        // gcpkms://
	_ "gocloud.dev/secrets/hashivault"    // hashivault://
	"gocloud.dev/secrets/localsecrets"    // base64key://
)

// KeyService wraps and unwraps data keys. It never sees resource values.
type KeyService interface {
	Encrypt(ctx context.Context, plaintext []byte) ([]byte, error)
	Decrypt(ctx context.Context, ciphertext []byte) ([]byte, error)
	Close() error
}

// MasterKeyFile is the name of the generated local master key in the data
// directory.
const MasterKeyFile = "master.key"

// OpenKeyService opens the key service named by keyURL. An empty keyURL means
// the local master key in dataDir/master.key, generated on first use with mode
// 0600. It also returns a description of the service that is safe to log.
func OpenKeyService(ctx context.Context, keyURL, dataDir string) (KeyService, string, error) {
	if keyURL == "" {
		return openMasterKeyFile(filepath.Join(dataDir, MasterKeyFile))
	}
	desc := DescribeKeyURL(keyURL)
	u, err := url.Parse(keyURL)
	if err != nil {
		return nil, desc, fmt.Errorf("key URL %s does not parse", desc)
	}
	switch u.Scheme {
	case "base64key", "hashivault", "awskms", "gcpkms", "azurekeyvault":
	default:
		return nil, desc, fmt.Errorf("key URL scheme %q is not supported: use base64key://, "+
			"hashivault://, awskms://, gcpkms:// or azurekeyvault://, or leave --key-url "+
			"empty for a local master key file", u.Scheme)
	}
	if u.Scheme == "base64key" && u.Host == "" {
		// gocloud would invent a random key here; a key that is gone at the
		// next start would make every secret unreadable.
		return nil, desc, errors.New("base64key:// needs the key: base64key://<32 bytes, " +
			"URL-safe base64>")
	}
	k, err := gcsecrets.OpenKeeper(ctx, keyURL)
	if err != nil {
		return nil, desc, fmt.Errorf("open key service %s: %w", desc, err)
	}
	return k, desc, nil
}

// DescribeKeyURL returns keyURL without anything secret in it, for logs and
// messages. An inline base64key is never shown.
func DescribeKeyURL(keyURL string) string {
	if keyURL == "" {
		return "local master key file"
	}
	u, err := url.Parse(keyURL)
	if err != nil {
		return "(unparsable key URL)"
	}
	if u.Scheme == "base64key" {
		return "base64key://(inline key)"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}

// openMasterKeyFile reads the local master key, creating it on first use.
func openMasterKeyFile(path string) (KeyService, string, error) {
	desc := "master key file " + path
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b, err = createMasterKeyFile(path)
	}
	if err != nil {
		return nil, desc, err
	}

	info, err := os.Stat(path)
	if err != nil {
		return nil, desc, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, desc, fmt.Errorf("%s is readable by other users (mode %v): "+
			"run chmod 600 %s", path, info.Mode().Perm(), path)
	}

	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, desc, fmt.Errorf("%s does not hold a base64-encoded 32-byte key", path)
	}
	var k [32]byte
	copy(k[:], key)
	clear(key)
	return localsecrets.NewKeeper(k), desc, nil
}

func createMasterKeyFile(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	text := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	clear(key)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create master key: %w", err)
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		return nil, fmt.Errorf("write master key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("write master key: %w", err)
	}
	return text, f.Close()
}
