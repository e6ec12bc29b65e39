package server

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/store"
)

// bootstrap creates the default workspace, its data key and an admin token on
// first start, and writes the token to the data directory. It runs in one
// transaction, so a failed first start leaves nothing half made, and under a
// lock, so that servers starting together on one database bootstrap once.
func (s *Server) bootstrap(ctx context.Context) error {
	created := false
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Lock(ctx, "bootstrap"); err != nil {
			return err
		}
		_, err := tx.Workspace(ctx, DefaultWorkspace)
		if err == nil || !errors.Is(err, store.ErrNotFound) {
			return err
		}

		ws, err := s.createWorkspaceTx(ctx, tx, DefaultWorkspace, "server")
		if err != nil {
			return err
		}
		token, err := s.createTokenTx(ctx, tx, ws, "server", "admin", []string{auth.Admin}, 0)
		if err != nil {
			return err
		}
		created = true
		return writePrivateFile(s.AdminTokenPath(), []byte(token.Secret+"\n"))
	})
	if err != nil {
		if created {
			os.Remove(s.AdminTokenPath())
		}
		return fmt.Errorf("first start: %w", err)
	}
	if created {
		s.logger.InfoContext(ctx, "server: first start: created workspace and admin token",
			"workspace", DefaultWorkspace, "admin_token_file", s.AdminTokenPath())
	}
	return nil
}

// createWorkspaceTx makes a workspace and its first data key.
func (s *Server) createWorkspaceTx(ctx context.Context, tx *store.Tx, name, actor string) (*store.Workspace, error) {
	ws, err := tx.CreateWorkspace(ctx, name)
	if err != nil {
		return nil, err
	}
	if _, err := s.keys.CreateDataKey(ctx, tx, ws.ID); err != nil {
		return nil, err
	}
	err = s.audit.AppendTx(ctx, tx, audit.Record{Workspace: name, Actor: actor,
		Action: "workspace.create", Target: name})
	return ws, err
}

// writePrivateFile writes data to path with mode 0600, replacing any file
// there.
func writePrivateFile(path string, data []byte) error {
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
