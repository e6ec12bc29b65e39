package agent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/latency"
	"github.com/keyhole/keyhole/internal/redact"
)

// instantTools answers every call at once with about 1 KB of JSON.
type instantTools struct{ content string }

func (instantTools) List(context.Context) ([]ToolSpec, error) { return nil, nil }

func (t instantTools) Call(context.Context, string, json.RawMessage) ToolOutcome {
	return ToolOutcome{Content: t.content}
}

// BenchmarkToolCallOverhead measures what the loop adds to one tool call:
// the name and arguments checks, the goroutine, the redaction of a 1 KB
// result against two secrets and the recording of its step. It alternates
// a direct Tools.Call with the same call through the loop and reports
// both at p50 and p99.
func BenchmarkToolCallOverhead(b *testing.B) {
	tools := instantTools{content: `[` + strings.Repeat(
		`{"id":"in_Acme0001","status":"paid","amount_paid":120000,"customer":"cus_Acme0001"},`,
		12) + `{}]`}
	l := &loop{runner: NewRunner(nil), agent: &Definition{}, tools: tools, tr: &Transcript{},
		red: redact.New("sk-bench-llm-key-0123456789abcdef", "sk_test_bench_stripe_0123456789")}
	call := ToolCall{ID: "toolu_1", Name: "search_invoices",
		Arguments: json.RawMessage(`{"email":"billing@acme.example"}`)}
	offered := []string{"get_customer", "search_invoices"}
	ctx := context.Background()

	var direct, inLoop []time.Duration
	for b.Loop() {
		start := time.Now()
		_ = tools.Call(ctx, call.Name, call.Arguments)
		mid := time.Now()
		runs := callTools(ctx, tools, offered, []ToolCall{call}, l.runner.log)
		l.recordTools(runs)
		direct = append(direct, mid.Sub(start))
		inLoop = append(inLoop, time.Since(mid))
		l.tr.Steps = l.tr.Steps[:0]
	}
	latency.ReportOverhead(b, direct, inLoop)
}
