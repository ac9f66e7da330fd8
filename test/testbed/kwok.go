package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// kwok's stages say how a simulated kubelet moves Nodes and pods along. The test bed uses the
// ones kwokctl uses by default (kwok's kustomize/stage/fast: node initialise, heartbeat with
// Leases, pod ready, complete and delete) plus the node-not-ready chaos stage for faults, read
// from the kwok module that hack/kwok builds, so they always match the binary.
const (
	kwokModule       = "sigs.k8s.io/kwok"
	kwokStageSet     = "kustomize/stage/fast"
	kwokNotReadyFile = "kustomize/stage/node/chaos/node-not-ready.yaml"
)

var kwokStagesOnce = sync.OnceValues(func() ([]string, error) {
	dir, err := moduleDirIn(filepath.Join(RepoRoot(), "hack", "kwok"), kwokModule)
	if err != nil {
		return nil, fmt.Errorf("find kwok's stages: %w", err)
	}
	files, err := kustomizeResources(filepath.Join(dir, kwokStageSet))
	if err != nil {
		return nil, fmt.Errorf("read kwok's stages: %w", err)
	}
	notReady := filepath.Join(dir, kwokNotReadyFile)
	if _, err := os.Stat(notReady); err != nil {
		return nil, fmt.Errorf("read kwok's stages: %w", err)
	}
	return append(files, notReady), nil
})

// kwokStages returns the paths of the stage files kwok runs with.
func kwokStages() ([]string, error) { return kwokStagesOnce() }

// kustomizeResources lists the files a kustomization's resources name, following folders to
// their own kustomization.yaml. Stage sets use nothing of kustomize but resources.
func kustomizeResources(dir string) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "kustomization.yaml"), err)
	}
	var out []string
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		files, err := kustomizeResources(p)
		if err != nil {
			return nil, err
		}
		out = append(out, files...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no resources", filepath.Join(dir, "kustomization.yaml"))
	}
	return out, nil
}
