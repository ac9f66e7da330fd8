package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/meridian-io/meridian/internal/policy/trace"
)

func init() {
	commands["trace"] = command{
		summary: "Decide a connection between two pods by the fleet's GlobalNetworkPolicies and show the path.",
		setup:   traceCommand,
	}
}

func traceCommand(fs *flag.FlagSet, g *globals) func(context.Context, io.Writer) error {
	from := fs.String("from", "", "Source pod: <cluster>/<namespace>/<pod>.")
	to := fs.String("to", "", "Destination pod: <cluster>/<namespace>/<pod>.")
	port := fs.String("port", "", "Destination port and protocol, such as 443/TCP (TCP when omitted).")
	output := fs.String("o", "text", "Output: text or json.")
	timeout := fs.Duration("timeout", time.Minute, "Give up after this long.")
	return func(ctx context.Context, stdout io.Writer) error {
		var req trace.Request
		var err error
		if *from == "" || *to == "" || *port == "" {
			return usageError{fmt.Errorf("--from, --to and --port are required, for example: kubectl meridian trace --from member-1/shop/web-0 --to member-2/shop/db-0 --port 5432/TCP")}
		}
		if *output != "text" && *output != "json" {
			return usageError{fmt.Errorf("-o %q: use text or json", *output)}
		}
		if req.From, err = trace.ParsePod("from", *from); err != nil {
			return usageError{err}
		}
		if req.To, err = trace.ParsePod("to", *to); err != nil {
			return usageError{err}
		}
		if req.Port, err = trace.ParsePort(*port); err != nil {
			return usageError{err}
		}
		hub, err := g.hubClient(trace.NewScheme)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		res, err := trace.Run(ctx, hub, trace.SecretConnector(hub, hub.Scheme()), req)
		if err != nil {
			return err
		}
		if *output == "json" {
			return writeJSON(stdout, res)
		}
		res.Print(stdout)
		return nil
	}
}
