package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyhole/keyhole/internal/tool"
)

// maxParallelTools bounds how many tool calls of one turn run at once.
const maxParallelTools = 8

// Tools is the toolset a run may call. keyhole implements it with the
// same path MCP calls take: argument validation, credential injection,
// redaction and audit. Both methods must be safe for concurrent use.
type Tools interface {
	// List returns the tools offered to the model.
	List(ctx context.Context) ([]ToolSpec, error)

	// Call calls the named tool, one that List returned, with the
	// arguments the model sent (a JSON value). A failure is an outcome
	// with IsError set whose Content tells the model what went wrong.
	Call(ctx context.Context, name string, args json.RawMessage) ToolOutcome
}

// ToolSpec is a tool as the model sees it.
type ToolSpec struct {
	Name        string
	Description string

	// InputSchema is the JSON Schema of the arguments, an object schema.
	InputSchema json.RawMessage
}

// SpecOf returns the spec of a compiled tool.
func SpecOf(t *tool.Tool) ToolSpec {
	return ToolSpec{Name: t.Name(), Description: t.Description(), InputSchema: t.InputSchema()}
}

// ToolOutcome is the result of one tool call.
type ToolOutcome struct {
	// Content is what the model reads: the shaped response (JSON for
	// HTTP tools) or, when IsError, what went wrong.
	Content string
	IsError bool
}

// toolRun is one tool call of a turn and, once made, its result.
type toolRun struct {
	call    ToolCall
	start   time.Time
	elapsed time.Duration
	out     ToolOutcome
}

// callTools makes the turn's tool calls, at most maxParallelTools at once,
// and returns their results in the order of calls. A call to a tool not
// offered, or with arguments that are not a JSON object, is answered with
// an error without reaching tools.
func callTools(ctx context.Context, tools Tools, offered []string, calls []ToolCall,
	log *slog.Logger) []toolRun {
	runs := make([]toolRun, len(calls))
	sem := make(chan struct{}, maxParallelTools)
	var wg sync.WaitGroup
	for i, c := range calls {
		runs[i].call = c
		wg.Add(1)
		sem <- struct{}{}
		go func(r *toolRun) {
			defer func() { <-sem; wg.Done() }()
			r.start = time.Now()
			r.out = callTool(ctx, tools, offered, r.call, log)
			if r.out.Content == "" {
				r.out.Content = "(no output)" // providers refuse empty results
			}
			r.elapsed = time.Since(r.start)
		}(&runs[i])
	}
	wg.Wait()
	return runs
}

// callTool makes one call, turning a panic in tools into an error result
// so one broken tool cannot take the process down.
func callTool(ctx context.Context, tools Tools, offered []string, c ToolCall,
	log *slog.Logger) (out ToolOutcome) {
	if !slices.Contains(offered, c.Name) {
		return errorOutcome(fmt.Sprintf("unknown tool %q; the tools are: %s", c.Name,
			toolList(offered)))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(c.Arguments, &obj); err != nil || obj == nil {
		return errorOutcome(fmt.Sprintf("the arguments of %s must be a JSON object "+
			"matching its input schema", c.Name))
	}
	defer func() {
		if p := recover(); p != nil {
			log.ErrorContext(ctx, "agent: tool call panicked", "tool", c.Name, "panic", p)
			out = errorOutcome(fmt.Sprintf("tool %s failed inside keyhole", c.Name))
		}
	}()
	return tools.Call(ctx, c.Name, c.Arguments)
}

func toolList(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// errorOutcome is an error result the model reads as {"error": msg}.
func errorOutcome(msg string) ToolOutcome {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return ToolOutcome{Content: string(b), IsError: true}
}

// ToolFuncs adapts a pair of functions that list and call compiled tools,
// such as a broker's for one grant, to [Tools].
type ToolFuncs struct {
	// ListTools returns the tools of the agent's toolset.
	ListTools func(ctx context.Context) ([]*tool.Tool, error)

	// CallTool calls one of them. A failed call is a result with IsError;
	// an error means the call could not be attempted, and becomes an
	// error result with the error's text.
	CallTool func(ctx context.Context, name string, args json.RawMessage) (*tool.Result, error)
}

// List returns the specs of the tools ListTools returns.
func (f ToolFuncs) List(ctx context.Context) ([]ToolSpec, error) {
	tools, err := f.ListTools(ctx)
	if err != nil {
		return nil, err
	}
	specs := make([]ToolSpec, len(tools))
	for i, t := range tools {
		specs[i] = SpecOf(t)
	}
	return specs, nil
}

// Call calls CallTool and turns its result into an outcome.
func (f ToolFuncs) Call(ctx context.Context, name string, args json.RawMessage) ToolOutcome {
	res, err := f.CallTool(ctx, name, args)
	if err != nil {
		return errorOutcome(err.Error())
	}
	return ToolOutcome{Content: string(res.Content), IsError: res.IsError}
}
