package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/secrets"
	"github.com/keyhole/keyhole/internal/store"
)

// Get returns the resource at path with its secret fields masked.
func (s *Service) Get(ctx context.Context, ws *store.Workspace, path string) (*Info, error) {
	row, typ, fields, err := s.load(ctx, ws.ID, path)
	if err != nil {
		return nil, err
	}
	return s.info(row, typ, fields, false), nil
}

// Reveal returns the resource at path with its secret fields in clear. The
// reveal is audited first: if the record cannot be written, nothing is
// revealed.
func (s *Service) Reveal(ctx context.Context, ws *store.Workspace, actor, path string) (*Info, error) {
	row, typ, fields, err := s.load(ctx, ws.ID, path)
	if err != nil {
		return nil, err
	}
	err = s.audit.Append(ctx, audit.Record{Workspace: ws.Name, Actor: actor,
		Action: "resource.reveal", Target: path, Detail: map[string]any{"version": row.Version}})
	if err != nil {
		return nil, fmt.Errorf("audit the reveal of %s: %w", path, err)
	}
	return s.info(row, typ, fields, true), nil
}

// load reads and opens a resource.
func (s *Service) load(ctx context.Context, wsID int64, path string) (*store.Resource, *Type, map[string]any, error) {
	if err := CheckPath(path); err != nil {
		return nil, nil, nil, err
	}
	row, err := s.row(ctx, wsID, path)
	if err != nil {
		return nil, nil, nil, err
	}
	typ, err := s.Type(ctx, wsID, row.Type)
	if err != nil {
		typ = nil // the type was deleted; show everything masked
	}
	fields, err := s.open(ctx, row)
	if err != nil {
		return nil, nil, nil, err
	}
	return row, typ, fields, nil
}

// row reads a sealed row, from the cache when it is fresh.
func (s *Service) row(ctx context.Context, wsID int64, path string) (*store.Resource, error) {
	key := rowKey{wsID, path}
	if r, ok := s.rows.Get(key); ok {
		return r, nil
	}
	r, err := s.db.Direct().Resource(ctx, wsID, path)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "", "resource %s does not exist", path)
	}
	if err != nil {
		return nil, err
	}
	s.rows.Put(key, r)
	return r, nil
}

// Invalidate forgets the cached rows of a workspace, after a change this
// Service did not make itself, such as a key rotation.
func (s *Service) Invalidate(wsID int64) {
	s.rows.DeleteFunc(func(k rowKey) bool { return k.workspace == wsID })
}

// open decrypts a stored resource value.
func (s *Service) open(ctx context.Context, row *store.Resource) (map[string]any, error) {
	if row.Sealed == nil {
		return nil, fault.New(fault.Unavailable, "external_value",
			"resource %s is held outside keyhole (%s) and cannot be opened here", row.Path, row.Reference)
	}
	plain, err := s.keys.Open(ctx, row.WorkspaceID, row.Path, row.Version, row.KeyVersion, row.Sealed)
	if errors.Is(err, secrets.ErrOpen) {
		s.logger.ErrorContext(ctx, "resource: sealed value failed to open",
			"path", row.Path, "version", row.Version, "key_version", row.KeyVersion)
		return nil, fault.Wrap(fault.Internal, "decrypt_failed", err, fmt.Sprintf(
			"resource %s cannot be decrypted: its stored ciphertext failed authentication "+
				"(altered, or copied from another row); set it again with keyhole resource set", row.Path))
	}
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, "keys_unavailable", err,
			fmt.Sprintf("resource %s cannot be decrypted: %v", row.Path, err))
	}
	var fields map[string]any
	err = json.Unmarshal(plain, &fields)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("resource %s: stored value is not JSON: %w", row.Path, err)
	}
	return fields, nil
}

// List returns the metadata of the resources under prefix, without opening
// any value: a damaged value does not stop the others from being listed.
func (s *Service) List(ctx context.Context, ws *store.Workspace, prefix string) ([]*Info, error) {
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	rows, err := s.db.Direct().Resources(ctx, ws.ID, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]*Info, 0, len(rows))
	for _, r := range rows {
		typ, _ := s.Type(ctx, ws.ID, r.Type)
		out = append(out, s.info(r, typ, nil, false))
	}
	return out, nil
}

// Delete removes the resource at path.
func (s *Service) Delete(ctx context.Context, ws *store.Workspace, actor, path string) error {
	if err := CheckPath(path); err != nil {
		return err
	}
	defer s.rows.Delete(rowKey{ws.ID, path})
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.LockResource(ctx, ws.ID, path); err != nil {
			return err
		}
		err := tx.DeleteResource(ctx, ws.ID, path)
		if errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "", "resource %s does not exist", path)
		}
		if err != nil {
			return err
		}
		return s.audit.AppendTx(ctx, tx, audit.Record{Workspace: ws.Name, Actor: actor,
			Action: "resource.delete", Target: path})
	})
}

// Credential is an opened resource as the broker uses it at call time.
type Credential struct {
	Path         string
	Type         string
	Fields       map[string]any
	SecretFields []string
	AllowedHosts []string
}

// Open decrypts the resource at path for use by the broker. The caller
// audits the use.
func (s *Service) Open(ctx context.Context, wsID int64, path string) (*Credential, error) {
	row, typ, fields, err := s.load(ctx, wsID, path)
	if err != nil {
		return nil, err
	}
	c := &Credential{Path: row.Path, Type: row.Type, Fields: fields, AllowedHosts: row.AllowedHosts}
	if typ != nil {
		c.SecretFields = typ.SecretFields
	} else {
		// Unknown type: treat every field as secret.
		for k := range fields {
			c.SecretFields = append(c.SecretFields, k)
		}
	}
	return c, nil
}
