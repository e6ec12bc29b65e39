package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/store"
)

// JobInfo is a job as the API shows it.
type JobInfo struct {
	ID          string          `json:"id"`
	Workspace   string          `json:"workspace"`
	Kind        string          `json:"kind"`
	Name        string          `json:"name,omitempty"`
	State       string          `json:"state"`
	Reason      string          `json:"reason,omitempty"`
	Args        json.RawMessage `json:"args,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	ExitCode    *int            `json:"exit_code,omitempty"`
	Usage       json.RawMessage `json:"usage,omitempty"`
	Transcript  json.RawMessage `json:"transcript,omitempty"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	Trigger     string          `json:"trigger,omitempty"`
	Worker      string          `json:"worker,omitempty"`
	CreatedBy   string          `json:"created_by,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
}

// LogChunk is a piece of a job's output.
type LogChunk struct {
	Seq    int64     `json:"seq"`
	Stream string    `json:"stream"`
	At     time.Time `json:"at"`
	Data   string    `json:"data"`
}

type jobList struct {
	Jobs []JobInfo `json:"jobs"`
}

type logList struct {
	Logs []LogChunk `json:"logs"`
}

// maxWait bounds how long a request may wait for a job to finish.
const maxWait = 60 * time.Second

func (s *Server) jobEndpoints() []endpoint {
	const base = "/api/v1/workspaces/{ws}/jobs"
	wait := param{"wait", "wait up to this long (e.g. 30s, at most 60s) for the job to finish"}
	return []endpoint{
		{method: "POST", path: base, scope: auth.JobsRun, tag: "jobs",
			summary: "Queue a job: a script, a tool call, an ad-hoc command or an agent",
			query:   []param{wait}, body: jobs.Request{}, resp: JobInfo{}, status: http.StatusAccepted,
			h: s.createJob},
		{method: "GET", path: base, scope: auth.JobsRead, tag: "jobs", summary: "List jobs, newest first",
			query: []param{{"state", "only jobs in this state"}, {"name", "only jobs of this script, tool or agent"},
				{"limit", "at most this many (default 100)"}},
			resp: jobList{}, h: s.listJobs},
		{method: "GET", path: base + "/{id}", scope: auth.JobsRead, tag: "jobs",
			summary: "Get a job with its state and result", query: []param{wait},
			resp: JobInfo{}, h: s.getJob},
		{method: "POST", path: base + "/{id}/cancel", scope: auth.JobsRun, tag: "jobs",
			summary: "Cancel a queued or running job", resp: JobInfo{}, h: s.cancelJob},
		{method: "GET", path: base + "/{id}/logs", scope: auth.JobsRead, tag: "jobs",
			summary: "A job's output; follow=true (or Accept: text/event-stream) streams it as server-sent events",
			query: []param{{"after", "only chunks after this sequence number"},
				{"follow", "true to stream until the job ends"}},
			resp: logList{}, h: s.jobLogs},
	}
}

func jobInfo(j *store.Job) JobInfo {
	in := JobInfo{ID: j.ID, Workspace: j.Workspace, Kind: j.Kind, Name: j.Name, State: j.State,
		Reason: j.Reason, Args: json.RawMessage(j.Args), Attempt: j.Attempt,
		MaxAttempts: j.MaxAttempts, Trigger: j.Trigger, Worker: j.Worker, CreatedBy: j.CreatedBy,
		CreatedAt: j.CreatedAt}
	if j.Result != "" {
		in.Result = json.RawMessage(j.Result)
	}
	if j.Usage != "" && j.Usage != "{}" {
		in.Usage = json.RawMessage(j.Usage)
	}
	if j.Transcript != "" {
		in.Transcript = json.RawMessage(j.Transcript)
	}
	if store.JobDone(j.State) && j.ExitCode >= 0 {
		code := j.ExitCode
		in.ExitCode = &code
	}
	if !j.StartedAt.IsZero() {
		in.StartedAt = &j.StartedAt
	}
	if !j.FinishedAt.IsZero() {
		in.FinishedAt = &j.FinishedAt
	}
	return in
}

// waitParam reads the wait query parameter.
func waitParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fault.New(fault.Invalid, "", "wait must be a duration such as 30s")
	}
	return min(d, maxWait), nil
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request, c *call) error {
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	var req jobs.Request
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	req.Actor = c.p.actor()
	j, err := s.jobs.Enqueue(r.Context(), c.ws, &req)
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if wait > 0 {
		if j, err = s.jobs.Wait(r.Context(), c.ws, j.ID, wait); err != nil {
			return err
		}
		if store.JobDone(j.State) {
			status = http.StatusOK
		}
	}
	writeJSON(w, status, jobInfo(j))
	return nil
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	f := store.JobFilter{State: q.Get("state"), Name: q.Get("name")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return fault.New(fault.Invalid, "", "limit must be between 1 and 10000")
		}
		f.Limit = n
	}
	list, err := s.jobs.List(r.Context(), c.ws, f)
	if err != nil {
		return err
	}
	out := jobList{Jobs: []JobInfo{}}
	for _, j := range list {
		out.Jobs = append(out.Jobs, jobInfo(j))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, c *call) error {
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	var j *store.Job
	if wait > 0 {
		j, err = s.jobs.Wait(r.Context(), c.ws, r.PathValue("id"), wait)
	} else {
		j, err = s.jobs.Get(r.Context(), c.ws, r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, jobInfo(j))
	return nil
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request, c *call) error {
	j, err := s.jobs.Cancel(r.Context(), c.ws, r.PathValue("id"), c.p.actor())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, jobInfo(j))
	return nil
}

func (s *Server) jobLogs(w http.ResponseWriter, r *http.Request, c *call) error {
	var after int64
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fault.New(fault.Invalid, "", "after must be a non-negative integer")
		}
		after = n
	}
	id := r.PathValue("id")
	if r.URL.Query().Get("follow") == "true" || r.Header.Get("Accept") == "text/event-stream" {
		return s.streamLogs(w, r, c, id, after)
	}
	logs, err := s.jobs.Logs(r.Context(), c.ws, id, after)
	if err != nil {
		return err
	}
	out := logList{Logs: []LogChunk{}}
	for _, l := range logs {
		out.Logs = append(out.Logs, logChunk(l))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func logChunk(l store.JobLog) LogChunk {
	return LogChunk{Seq: l.Seq, Stream: l.Stream, At: l.At, Data: string(l.Data)}
}

// streamLogs sends a job's output as server-sent events: one "log" event per
// chunk, then an "end" event with the finished job.
func (s *Server) streamLogs(w http.ResponseWriter, r *http.Request, c *call, id string, after int64) error {
	if _, err := s.jobs.Get(r.Context(), c.ws, id); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc.Flush()

	send := func(event string, v any) error {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	j, err := s.jobs.Follow(r.Context(), c.ws, id, after, func(l store.JobLog) error {
		return send("log", logChunk(l))
	})
	if err != nil || j == nil {
		return nil // the client went away; nothing more to say
	}
	send("end", jobInfo(j))
	return nil
}
