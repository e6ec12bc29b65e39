package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/server"
)

func init() { register(newAgentCmd) }

func newAgentCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "agent",
		Aliases: []string{"agents"},
		Short:   "Run agents: a model calling your tools, with no key in reach of either",
	}
	var follow, detach bool
	run := &cobra.Command{
		Use:   "run NAME MESSAGE...",
		Short: "Run an agent on a message and print its answer",
		Long: "Run an agent as a job: the model loop runs in keyhole, every tool call goes\n" +
			"through the broker, and the model's key is used only to call the model.\n" +
			"--follow shows each model call and tool call as it happens; the full\n" +
			"transcript is kept: keyhole job get ID --transcript.\n\n" +
			"  keyhole agent run billing-assistant \"Did Acme pay?\"",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, a []string) error {
			message := strings.TrimSpace(strings.Join(a[1:], " "))
			if message == "" {
				return errors.New("give the agent a message")
			}
			args, _ := json.Marshal(jobs.AgentArgs{Message: message})
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			j, err := c.Enqueue(cmd.Context(), jobs.Request{Kind: jobs.KindAgent, Name: a[0],
				Args: args}, 0)
			if err != nil {
				return err
			}
			if detach {
				fmt.Fprintln(stdio.Out, j.ID)
				return nil
			}
			if follow {
				_, err := c.FollowJobLogs(cmd.Context(), j.ID, 0, func(l server.LogChunk) {
					io.WriteString(stdio.Err, l.Data)
				})
				if err != nil {
					return err
				}
			}
			return awaitJob(cmd.Context(), c, stdio, j.ID, false)
		},
	}
	run.Flags().BoolVarP(&follow, "follow", "f", false, "show the model and tool calls as they happen")
	run.Flags().BoolVarP(&detach, "detach", "d", false, "print the job id and return at once")
	cmd.AddCommand(run)
	return cmd
}
