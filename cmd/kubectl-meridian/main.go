// Command kubectl-meridian is Meridian's kubectl plugin (`kubectl meridian <command>`). Each
// command lives in its own file and registers itself in commands; the logic is in internal/.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// command is one subcommand: it defines its flags on fs and returns what runs once they are parsed.
type command struct {
	summary string
	// positional describes the arguments besides flags the command takes ("" for none); they
	// reach it in globals.args.
	positional string
	setup      func(fs *flag.FlagSet, g *globals) func(ctx context.Context, stdout io.Writer) error
}

var commands = map[string]command{}

// globals are the flags every command has (which hub to talk to) and the command's positional
// arguments.
type globals struct {
	kubeconfig, context string
	args                []string
}

// hubConfig loads the hub's REST config as kubectl does: --kubeconfig, else $KUBECONFIG, else
// ~/.kube/config; --context, else the current context.
func (g *globals) hubConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = g.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: g.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load the hub's kubeconfig: %w", err)
	}
	return cfg, nil
}

// hubClient connects to the hub with a client that knows the kinds of the command's scheme.
func (g *globals) hubClient(newScheme func() (*runtime.Scheme, error)) (client.Client, error) {
	cfg, err := g.hubConfig()
	if err != nil {
		return nil, err
	}
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	hub, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connect to the hub: %w", err)
	}
	return hub, nil
}

// writeJSON prints v as `-o json` does: indented.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: kubectl meridian <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'kubectl meridian <command> -h' for a command's flags.")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the exit code: 0, 1 for a failure, 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "error: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("kubectl meridian "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	g := &globals{}
	fs.StringVar(&g.kubeconfig, "kubeconfig", "", "Path to the hub's kubeconfig (default: $KUBECONFIG, then ~/.kube/config).")
	fs.StringVar(&g.context, "context", "", "Context of the kubeconfig to use (default: the current one).")
	exec := cmd.setup(fs, g)
	if cmd.positional != "" {
		fs.Usage = func() {
			fmt.Fprintf(stderr, "Usage: kubectl meridian %s %s [flags]\n", args[0], cmd.positional)
			fs.PrintDefaults()
		}
	}
	// Flags may come before, between or after the positional arguments, as with kubectl.
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		g.args = append(g.args, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if cmd.positional == "" && len(g.args) > 0 {
		fmt.Fprintf(stderr, "error: unexpected arguments %v\n", g.args)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := exec(ctx, stdout); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			return 2
		}
		return 1
	}
	return 0
}

// usageError is a wrong command line: exit code 2.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }
