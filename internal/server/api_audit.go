package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/fault"
)

type auditList struct {
	Entries []audit.Entry `json:"entries"`
}

func (s *Server) auditEndpoints() []endpoint {
	return []endpoint{
		{method: "GET", path: "/api/v1/workspaces/{ws}/audit", scope: auth.AuditRead, tag: "audit",
			summary: "List audit records, oldest first",
			query: []param{{"since", "RFC 3339 time or a duration back from now, e.g. 1h"},
				{"action", "an action, or a prefix such as resource"},
				{"after", "only records after this sequence number"},
				{"limit", "at most this many (default 1000)"}},
			resp: auditList{}, h: s.listAudit},
		{method: "GET", path: "/api/v1/workspaces/{ws}/audit/verify", scope: auth.AuditRead, tag: "audit",
			summary: "Verify the audit chain and name the first broken record",
			resp:    audit.Verification{}, h: s.verifyAudit},
	}
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	f := audit.Filter{Action: q.Get("action"), Limit: 1000}
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v, time.Now())
		if err != nil {
			return err
		}
		f.Since = t
	}
	for name, dst := range map[string]*int64{"after": &f.After} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fault.New(fault.Invalid, "", "%s must be a non-negative integer", name)
			}
			*dst = n
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 10000 {
			return fault.New(fault.Invalid, "", "limit must be between 1 and 10000")
		}
		f.Limit = n
	}
	entries, err := s.audit.List(r.Context(), c.ws.Name, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, auditList{Entries: entries})
	return nil
}

// parseSince reads an RFC 3339 time or a duration before now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fault.New(fault.Invalid, "",
		"since %q must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (1h, 30m)", v)
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request, c *call) error {
	v, err := s.audit.Verify(r.Context(), c.ws.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
