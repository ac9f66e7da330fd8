// Command installer renders a kustomization (config/default) into one YAML stream, with kustomize
// as a library: `make build-installer` writes dist/install.yaml with it, and no kustomize binary
// is needed. Its own module keeps kustomize's dependencies out of Meridian's go.mod.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	dir := flag.String("kustomization", "config/default", "Folder of the kustomization to render.")
	out := flag.String("o", "dist/install.yaml", "File to write; - for standard output.")
	flag.Parse()
	if err := run(*dir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "installer:", err)
		os.Exit(1)
	}
}

func run(dir, out string) error {
	fs := filesys.MakeFsOnDisk()
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionUnspecified // the kustomization's sortOptions decide
	k := krusty.MakeKustomizer(opts)
	resources, err := k.Run(fs, dir)
	if err != nil {
		return fmt.Errorf("render %s: %w", dir, err)
	}
	y, err := resources.AsYaml()
	if err != nil {
		return err
	}
	if out == "-" {
		_, err = os.Stdout.Write(y)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, y, 0o644)
}
