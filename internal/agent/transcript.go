package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keyhole/keyhole/internal/redact"
	"github.com/keyhole/keyhole/internal/tool"
)

// StopReason says why a run ended.
type StopReason string

// Reasons a run ends for.
const (
	// StopFinal: the model answered without asking for a tool.
	StopFinal StopReason = "final"
	// StopMaxTurns: the model still asked for tools after max_turns calls.
	StopMaxTurns StopReason = "max_turns"
	// StopBudget: the run used up its token budget.
	StopBudget StopReason = "budget"
	// StopTimeout: the run's timeout, or the caller's deadline, passed.
	StopTimeout StopReason = "timeout"
	// StopCancelled: the caller cancelled the run.
	StopCancelled StopReason = "cancelled"
	// StopError: the run could not start, or a model call failed.
	StopError StopReason = "error"
)

// StepKind says what a [Step] records.
type StepKind string

// Kinds of step.
const (
	StepInput StepKind = "input" // the message that started the run
	StepModel StepKind = "model" // one model call and its reply
	StepTool  StepKind = "tool"  // one tool call and its result
	StepEnd   StepKind = "end"   // how the run ended
)

// Step is one event of a run. Which fields are set depends on Kind. Every
// string in it has been redacted.
type Step struct {
	Kind StepKind `json:"kind"`

	// Turn numbers model calls from 1; a tool step has its model call's
	// number, the input step 0 and the end step the last call's.
	Turn int `json:"turn"`

	Start    time.Time     `json:"start"`
	Duration tool.Duration `json:"duration,omitempty"` // model and tool steps

	// Text is the message of an input step, the model's text of a model
	// step and the final answer of an end step.
	Text string `json:"text,omitempty"`

	// ToolCalls, Usage and ModelStop (the provider's own stop or finish
	// reason) belong to a model step.
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	Usage     *Usage     `json:"usage,omitempty"`
	ModelStop string     `json:"model_stop,omitempty"`

	// Call, Result and IsError belong to a tool step; Result is what the
	// model was given.
	Call    *ToolCall `json:"call,omitempty"`
	Result  string    `json:"result,omitempty"`
	IsError bool      `json:"is_error,omitempty"`

	// Stop belongs to an end step; Error to an end step or a model step
	// whose call failed.
	Stop  StopReason `json:"stop,omitempty"`
	Error string     `json:"error,omitempty"`
}

// ToolCall is a tool call the model asked for.
type ToolCall struct {
	ID   string `json:"id"`
	Name string `json:"name"`

	// Arguments is the JSON the model sent; arguments that are not valid
	// JSON are kept as a JSON string of their text.
	Arguments json.RawMessage `json:"arguments"`
}

// Usage counts tokens. InputTokens includes tokens read from or written
// to a prompt cache.
type Usage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

// Total returns input and output tokens together.
func (u Usage) Total() int64 { return u.InputTokens + u.OutputTokens }

func (u *Usage) add(v Usage) {
	u.InputTokens += v.InputTokens
	u.OutputTokens += v.OutputTokens
}

// Transcript is the record of one run, for the job to store. It marshals
// to JSON and holds no secret: every string has been redacted.
type Transcript struct {
	Agent    string     `json:"agent"`
	Provider string     `json:"provider"`
	Model    string     `json:"model"`
	Stop     StopReason `json:"stop"`

	// Answer is the model's final text; set when Stop is StopFinal.
	Answer string `json:"answer,omitempty"`

	// Error says why a run that did not end with an answer stopped.
	Error string `json:"error,omitempty"`

	Turns    int           `json:"turns"` // model calls made
	Usage    Usage         `json:"usage"` // summed over the model calls
	Started  time.Time     `json:"started"`
	Duration tool.Duration `json:"duration"`
	Steps    []Step        `json:"steps"`
}

// RunError is the error a run that did not end with a final answer
// returns. Its message is redacted.
type RunError struct {
	Reason StopReason
	msg    string
	err    error
}

// Error says why the run stopped.
func (e *RunError) Error() string {
	return fmt.Sprintf("agent: run stopped (%s): %s", e.Reason, e.msg)
}

// Is matches what the original error matched, such as
// context.DeadlineExceeded, without exposing its unredacted text.
func (e *RunError) Is(target error) bool { return e.err != nil && errors.Is(e.err, target) }

// stopError builds a RunError with err's text redacted.
func stopError(reason StopReason, red *redact.Redactor, err error) *RunError {
	return &RunError{Reason: reason, msg: red.String(err.Error()), err: err}
}

// redactStep redacts every string of s in place.
func redactStep(red *redact.Redactor, s *Step) {
	if red.Empty() {
		return
	}
	s.Text, s.Result, s.Error = red.String(s.Text), red.String(s.Result), red.String(s.Error)
	s.ModelStop = red.String(s.ModelStop)
	for i := range s.ToolCalls {
		s.ToolCalls[i] = redactCall(red, s.ToolCalls[i])
	}
	if s.Call != nil {
		c := redactCall(red, *s.Call)
		s.Call = &c
	}
}

func redactCall(red *redact.Redactor, c ToolCall) ToolCall {
	return ToolCall{ID: red.String(c.ID), Name: red.String(c.Name),
		Arguments: red.Bytes(c.Arguments)}
}

// rawArguments returns args as JSON: as they are when valid, and as a
// JSON string of their text otherwise.
func rawArguments(args string) json.RawMessage {
	if json.Valid([]byte(args)) {
		return json.RawMessage(args)
	}
	b, _ := json.Marshal(args)
	return b
}
