package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyhole/keyhole/internal/redact"
	"github.com/keyhole/keyhole/internal/tool"
)

// loop is the state of one run.
type loop struct {
	runner *Runner
	agent  *Definition
	tools  Tools
	red    *redact.Redactor
	onStep func(Step)
	tr     *Transcript
	turn   int
}

// run calls the model, and the tools it asks for, until it answers or a
// limit ends the run.
func (l *loop) run(ctx context.Context, conv conversation, offered []string) (*Transcript,
	error) {
	for {
		if ctx.Err() != nil {
			return l.stopped(ctx, ctx.Err())
		}
		rep, err := l.callModel(ctx, conv)
		if err != nil {
			return l.stopped(ctx, err)
		}
		if len(rep.calls) == 0 {
			l.tr.Answer = l.red.String(rep.text)
			return l.end(StopFinal, nil)
		}
		if stop, err := l.limitReached(); err != nil {
			return l.end(stop, err)
		}

		runs := callTools(ctx, l.tools, offered, rep.calls, l.runner.log)
		l.recordTools(runs)
		conv.addResults(runs)
	}
}

// callModel makes one model call and records it.
func (l *loop) callModel(ctx context.Context, conv conversation) (*reply, error) {
	l.turn++
	start := time.Now()
	rep, err := conv.send(ctx)
	step := Step{Kind: StepModel, Turn: l.turn, Start: start,
		Duration: tool.Duration(time.Since(start))}
	l.tr.Turns = l.turn

	if err != nil {
		step.Error = err.Error()
		l.record(step)
		return nil, err
	}
	l.tr.Usage.add(rep.usage)
	usage := rep.usage
	step.Text, step.ToolCalls, step.Usage, step.ModelStop = rep.text, rep.calls, &usage,
		rep.stop
	l.record(step)
	l.runner.log.DebugContext(ctx, "agent: model call", "agent", l.agent.Name,
		"turn", l.turn, "duration", time.Duration(step.Duration),
		"input_tokens", usage.InputTokens, "output_tokens", usage.OutputTokens,
		"tool_calls", len(rep.calls))
	return rep, nil
}

// limitReached reports whether the run may not call the model again,
// though the model asked for tools: then their calls are not made.
func (l *loop) limitReached() (StopReason, *RunError) {
	if l.turn >= l.agent.maxTurns() {
		return StopMaxTurns, &RunError{Reason: StopMaxTurns, msg: fmt.Sprintf(
			"the model still asked for tools after %d turns (max_turns)", l.turn)}
	}
	if b := l.agent.budgetTokens(); b > 0 && l.tr.Usage.Total() >= b {
		return StopBudget, &RunError{Reason: StopBudget, msg: fmt.Sprintf(
			"the run used %d tokens of its budget of %d", l.tr.Usage.Total(), b)}
	}
	return "", nil
}

// recordTools redacts each result, so neither the model nor the
// transcript sees a secret, and records a step per call in call order.
func (l *loop) recordTools(runs []toolRun) {
	for i := range runs {
		r := &runs[i]
		r.out.Content = l.red.String(r.out.Content)
		call := r.call
		l.record(Step{Kind: StepTool, Turn: l.turn, Start: r.start,
			Duration: tool.Duration(r.elapsed), Call: &call, Result: r.out.Content,
			IsError: r.out.IsError})
	}
}

// errRunTimeout is the cause of a run's context ending at the agent's
// timeout, as opposed to the caller's deadline.
var errRunTimeout = errors.New("agent: run timed out")

// stopped ends a run that err interrupted, telling a deadline or a
// cancellation from a failure.
func (l *loop) stopped(ctx context.Context, err error) (*Transcript, error) {
	switch {
	case errors.Is(context.Cause(ctx), errRunTimeout):
		return l.end(StopTimeout, &RunError{Reason: StopTimeout, err: ctx.Err(),
			msg: fmt.Sprintf("the run did not finish within its timeout of %s",
				l.agent.timeout())})
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return l.end(StopTimeout, &RunError{Reason: StopTimeout, err: ctx.Err(),
			msg: "the caller's deadline passed before the run finished"})
	case ctx.Err() != nil:
		return l.end(StopCancelled, &RunError{Reason: StopCancelled, err: ctx.Err(),
			msg: "the run was cancelled"})
	}
	return l.end(StopError, stopError(StopError, l.red, fmt.Errorf("model call failed: %w",
		err)))
}

// end finishes the transcript with its stop reason and records the end
// step.
func (l *loop) end(stop StopReason, err *RunError) (*Transcript, error) {
	l.tr.Stop = stop
	l.tr.Duration = tool.Duration(time.Since(l.tr.Started))
	if err != nil {
		l.tr.Error = err.msg
	}
	l.record(Step{Kind: StepEnd, Turn: l.turn, Start: time.Now(), Text: l.tr.Answer,
		Stop: stop, Error: l.tr.Error})
	if err != nil {
		return l.tr, err
	}
	return l.tr, nil
}

// record redacts a step, adds it to the transcript and hands it to
// OnStep.
func (l *loop) record(s Step) {
	redactStep(l.red, &s)
	l.tr.Steps = append(l.tr.Steps, s)
	if l.onStep != nil {
		l.onStep(s)
	}
}
