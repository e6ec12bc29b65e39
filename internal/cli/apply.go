package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/client"
	"github.com/keyhole/keyhole/internal/server"
)

func init() {
	register(newApplyCmd)
	register(newGetCmd)
	register(newDeleteCmd)
}

func newApplyCmd(stdio Stdio) *cobra.Command {
	var paths []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR...",
		Short: "Apply configuration (tools, toolsets, routes, resource types, …) all or nothing",
		Long: "Apply YAML documents (several per file, separated by ---) or JSON files. A\n" +
			"directory applies every .yaml and .yml file in it and every .json file with\n" +
			"a kind, skipping node_modules and hidden folders. Everything is\n" +
			"checked before anything is written; one bad document applies nothing.\n" +
			"Applying the same files again changes nothing.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			files, err := readConfigFiles(paths, stdio.In)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			res, err := c.Apply(cmd.Context(), files, dryRun)
			if err != nil {
				return applyError(err)
			}
			verb := ""
			if res.DryRun {
				verb = " (dry run: nothing written)"
			}
			for _, ch := range res.Changes {
				fmt.Fprintf(stdio.Out, "%s/%s %s%s\n", ch.Kind, ch.Name, ch.Action, verb)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&paths, "filename", "f", nil, "file or directory to apply; - for stdin")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would change without changing it")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// applyError lists each problem of a refused apply on its own line.
func applyError(err error) error {
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Code != "invalid_config" {
		return err
	}
	var problems []server.ConfigProblem
	if json.Unmarshal(apiErr.Details, &problems) != nil || len(problems) == 0 {
		return err
	}
	var b strings.Builder
	b.WriteString("nothing was applied:")
	for _, p := range problems {
		b.WriteString("\n  " + p.Source)
		if p.Kind != "" {
			b.WriteString(" (" + p.Kind + " " + p.Name + ")")
		}
		b.WriteString(": " + p.Message)
	}
	return &ExitError{Code: 1, Message: b.String()}
}

// readConfigFiles reads the files and directories given to apply.
func readConfigFiles(paths []string, stdin io.Reader) ([]server.ApplyFile, error) {
	var files []server.ApplyFile
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, err
			}
			files = append(files, server.ApplyFile{Name: "stdin", Content: string(b)})
			continue
		}
		found, err := configFilesIn(p)
		if err != nil {
			return nil, err
		}
		for _, f := range found {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			files = append(files, server.ApplyFile{Name: f, Content: string(b)})
		}
	}
	return files, nil
}

func configFilesIn(p string) ([]string, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, errors.Unwrap(err))
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	var out []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// A folder may hold a program beside its configuration: its
			// dependencies and hidden folders are not configuration.
			if path != p && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml":
			out = append(out, path)
		case ".json":
			if hasKind(path) {
				out = append(out, path)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no .yaml, .yml or .json files", p)
	}
	sort.Strings(out)
	return out, nil
}

// hasKind reports whether a JSON file is a configuration document: an
// object with a kind, unlike package.json and other files a folder may hold.
func hasKind(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return true // let the read fail where it is reported
	}
	var head struct {
		Kind string `json:"kind"`
	}
	return json.Unmarshal(b, &head) == nil && head.Kind != ""
}

func newGetCmd(stdio Stdio) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "Show configuration: tools, toolsets, routes, resource_types, …",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if len(args) == 2 {
				obj, err := c.ConfigObject(cmd.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				if format == "" || format == "table" {
					format = "yaml"
				}
				return output(stdio.Out, format, obj.Spec, nil)
			}
			objs, err := c.Config(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			specs := make([]json.RawMessage, len(objs))
			for i, o := range objs {
				specs[i] = o.Spec
			}
			return output(stdio.Out, format, specs, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KIND\tNAME\tVERSION\tUPDATED")
				for _, o := range objs {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", o.Kind, o.Name, o.Version,
						o.UpdatedAt.Format("2006-01-02 15:04"))
				}
				return tw.Flush()
			})
		},
	}
	addOutputFlag(cmd, &format, "table")
	return cmd
}

func newDeleteCmd(stdio Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "delete KIND NAME",
		Short: "Delete a configuration object that nothing else uses",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteConfig(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "deleted %s/%s\n", args[0], args[1])
			return nil
		},
	}
}
