package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/meridian-io/meridian/internal/describe"
)

func init() {
	commands["describe"] = command{
		summary:    "Show one hub object across the fleet: conditions, each cluster, the ClusterWorks behind it.",
		positional: "<kind> <name> | <kind>/<name>",
		setup:      describeCommand,
	}
}

func describeCommand(fs *flag.FlagSet, g *globals) func(context.Context, io.Writer) error {
	output := fs.String("o", "text", "Output: text or json.")
	timeout := fs.Duration("timeout", 30*time.Second, "Give up after this long.")
	return func(ctx context.Context, stdout io.Writer) error {
		args := g.args
		if len(args) == 1 && strings.Contains(args[0], "/") {
			args = strings.SplitN(args[0], "/", 2)
		}
		if len(args) != 2 || args[0] == "" || args[1] == "" {
			return usageError{fmt.Errorf("name a kind and an object, for example: kubectl meridian describe gnp allow-web (kinds: globalnetworkpolicy, membercluster, agentconfig, globalnamespace)")}
		}
		kind, err := describe.ParseKind(args[0])
		if err != nil {
			return usageError{err}
		}
		if *output != "text" && *output != "json" {
			return usageError{fmt.Errorf("-o %q: use text or json", *output)}
		}
		hub, err := g.hubClient(describe.NewScheme)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		report, err := describe.Run(ctx, hub, kind, args[1])
		if err != nil {
			return err
		}
		if *output == "json" {
			return writeJSON(stdout, report)
		}
		return report.Print(stdout)
	}
}
