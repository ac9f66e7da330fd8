// Package agenttest plays the kubelet's part for the node agent's config file in tests: it writes
// a mounted ConfigMap's folder the way the kubelet's atomic writer does, a timestamped folder of
// files, a ..data symlink to it swapped by rename, and one symlink per key through ..data.
package agenttest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

var seq atomic.Int64

// WriteConfigMapDir makes dir hold files as a mounted ConfigMap would, replacing what it held in
// one atomic rename of the ..data symlink. Files not in files disappear.
func WriteConfigMapDir(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), seq.Add(1))
	tsDir := filepath.Join(dir, ts)
	if err := os.Mkdir(tsDir, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(tsDir, name), data, 0o644); err != nil {
			return err
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(ts, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				return err
			}
		}
	}
	if old != "" {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}
