package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/secrets"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/ttlcache"
)

// Mask replaces secret field values when a resource is shown.
const Mask = "********"

// MaxValueSize is the largest resource value accepted, in bytes of JSON.
const MaxValueSize = 64 << 10

// KindType is the object kind under which custom resource types are stored.
const KindType = "resource_type"

// Service stores, shows and opens resources.
type Service struct {
	db     *store.DB
	keys   *secrets.Keyring
	audit  *audit.Log
	logger *slog.Logger

	mu    sync.Mutex
	types map[typeKey]*Type // compiled custom types

	// rows caches sealed rows, never plaintext, for a second, so that a hot
	// credential is decrypted without a database round trip. Writes through
	// this Service clear their entry; writes by another server are seen
	// within rowCacheTTL.
	rows *ttlcache.Cache[rowKey, *store.Resource]
}

type rowKey struct {
	workspace int64
	path      string
}

// rowCacheTTL bounds how long another server's change to a resource takes to
// be seen here.
const rowCacheTTL = time.Second

type typeKey struct {
	workspace int64
	name      string
	version   int64
}

// NewService returns a Service. A nil logger discards logs.
func NewService(db *store.DB, keys *secrets.Keyring, log *audit.Log, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, keys: keys, audit: log, logger: logger, types: map[typeKey]*Type{},
		rows: ttlcache.New[rowKey, *store.Resource](rowCacheTTL, 10000)}
}

// Info is a resource as shown to users: metadata, and its value with secret
// fields masked unless it was revealed.
type Info struct {
	Path         string         `json:"path"`
	Type         string         `json:"type"`
	Description  string         `json:"description,omitempty"`
	AllowedHosts []string       `json:"allowed_hosts"`
	SecretFields []string       `json:"secret_fields,omitempty"`
	Value        map[string]any `json:"value,omitempty"`
	Revealed     bool           `json:"revealed,omitempty"`
	Reference    string         `json:"reference,omitempty"`
	Version      int64          `json:"version"`
	KeyVersion   int            `json:"key_version,omitempty"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
	UpdatedBy    string         `json:"updated_by,omitempty"`
}

// SetRequest asks to create or replace a resource.
type SetRequest struct {
	Path         string          `json:"-"`
	Type         string          `json:"type"`
	Description  string          `json:"description,omitempty"`
	AllowedHosts []string        `json:"allowed_hosts,omitempty"` // nil: the type's
	Value        json.RawMessage `json:"value"`
}

// Set validates req's value against its type and stores it sealed, replacing
// any resource at the path. Concurrent writers to one path are serialised:
// the last one wins, whole.
func (s *Service) Set(ctx context.Context, ws *store.Workspace, actor string, req SetRequest) (*Info, error) {
	if err := CheckPath(req.Path); err != nil {
		return nil, err
	}
	typ, err := s.Type(ctx, ws.ID, req.Type)
	if err != nil {
		return nil, err
	}
	fields, err := decodeValue(typ, req.Value)
	if err != nil {
		return nil, err
	}
	hosts, err := effectiveHosts(typ, req.AllowedHosts, fields)
	if err != nil {
		return nil, err
	}
	if len(req.Description) > 1000 {
		return nil, fault.New(fault.Invalid, "", "description is longer than 1000 characters")
	}

	var row *store.Resource
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		row, err = s.setTx(ctx, tx, ws, actor, req, typ, hosts)
		return err
	})
	s.rows.Delete(rowKey{ws.ID, req.Path})
	if err != nil {
		return nil, err
	}
	return s.info(row, typ, fields, false), nil
}

func (s *Service) setTx(ctx context.Context, tx *store.Tx, ws *store.Workspace, actor string,
	req SetRequest, typ *Type, hosts []string) (*store.Resource, error) {
	if err := tx.LockResource(ctx, ws.ID, req.Path); err != nil {
		return nil, err
	}
	row := &store.Resource{WorkspaceID: ws.ID, Path: req.Path, Type: typ.Name,
		Description: req.Description, AllowedHosts: hosts, Version: 1, UpdatedBy: actor}
	action := "resource.create"
	old, err := tx.Resource(ctx, ws.ID, req.Path)
	switch {
	case err == nil:
		row.Version, row.CreatedAt, action = old.Version+1, old.CreatedAt, "resource.update"
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}

	kv, sealed, err := s.keys.Seal(ctx, tx, ws.ID, req.Path, row.Version, req.Value)
	if err != nil {
		return nil, fmt.Errorf("seal resource %s: %w", req.Path, err)
	}
	row.KeyVersion, row.Sealed = kv, sealed
	if err := tx.PutResource(ctx, row); err != nil {
		return nil, err
	}
	if row.CreatedAt.IsZero() {
		row.CreatedAt = row.UpdatedAt
	}
	return row, s.audit.AppendTx(ctx, tx, audit.Record{Workspace: ws.Name, Actor: actor,
		Action: action, Target: req.Path,
		Detail: map[string]any{"type": typ.Name, "version": row.Version, "allowed_hosts": hosts}})
}

// decodeValue checks a value against its type and returns its fields.
// Messages about a failing value never repeat a secret field's value.
func decodeValue(typ *Type, raw json.RawMessage) (map[string]any, error) {
	if len(raw) == 0 {
		return nil, fault.New(fault.Invalid, "invalid_value", "the resource value is missing: "+
			"give a JSON object such as {\"apiKey\": \"…\"}")
	}
	if len(raw) > MaxValueSize {
		return nil, fault.New(fault.TooLarge, "", "the resource value is larger than %d bytes", MaxValueSize)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, fault.New(fault.Invalid, "invalid_value",
			"the resource value must be a JSON object, such as {\"apiKey\": \"…\"}")
	}
	if err := typ.Compiled().ValidateJSON(raw); err != nil {
		msg := hideSecrets(err.Error(), typ, fields)
		return nil, fault.New(fault.Invalid, "invalid_value",
			"the value does not match type %s: %s", typ.Name, msg)
	}
	return fields, nil
}

func hideSecrets(msg string, typ *Type, fields map[string]any) string {
	for _, f := range typ.SecretFields {
		if v, ok := fields[f].(string); ok && v != "" {
			msg = strings.ReplaceAll(msg, v, Mask)
		}
	}
	return msg
}

// effectiveHosts returns the hosts a resource's credential may go to: the
// ones given, else the type's, plus the host of each URL field's value.
func effectiveHosts(typ *Type, given []string, fields map[string]any) ([]string, error) {
	hosts := slices.Clone(typ.AllowedHosts)
	if given != nil {
		hosts = nil
		for _, h := range given {
			if err := CheckHost(h); err != nil {
				return nil, fault.Wrap(fault.Invalid, "invalid_host", err, err.Error())
			}
			hosts = append(hosts, h)
		}
	}
	for _, f := range typ.URLFields {
		v, _ := fields[f].(string)
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, fault.New(fault.Invalid, "invalid_value",
				"field %s must be an http or https URL with a host", f)
		}
		if !slices.Contains(hosts, strings.ToLower(u.Host)) {
			hosts = append(hosts, strings.ToLower(u.Host))
		}
	}
	if hosts == nil {
		hosts = []string{}
	}
	return hosts, nil
}

func (s *Service) info(r *store.Resource, typ *Type, fields map[string]any, reveal bool) *Info {
	in := &Info{Path: r.Path, Type: r.Type, Description: r.Description,
		AllowedHosts: r.AllowedHosts, Reference: r.Reference, Version: r.Version,
		KeyVersion: r.KeyVersion, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		UpdatedBy: r.UpdatedBy, Revealed: reveal && fields != nil}
	if in.AllowedHosts == nil {
		in.AllowedHosts = []string{}
	}
	if typ != nil {
		in.SecretFields = typ.SecretFields
	}
	if fields != nil {
		in.Value = fields
		if !reveal {
			in.Value = masked(typ, fields)
		}
	}
	return in
}

func masked(typ *Type, fields map[string]any) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		if typ == nil || typ.IsSecret(k) {
			v = Mask
		}
		out[k] = v
	}
	return out
}
