// Package member embeds the member.meridian.io CRDs (generated here by `make manifests`), which
// Meridian puts into member clusters through ClusterWorks; they are never installed on the hub.
package member

import (
	"embed"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

//go:embed *.yaml
var files embed.FS

// CRD returns the CRD of that name (<plural>.member.meridian.io), as an object to apply.
func CRD(name string) (*unstructured.Unstructured, error) {
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		data, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &u.Object); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		if u.GetName() == name {
			return u, nil
		}
	}
	return nil, fmt.Errorf("no member CRD named %s in config/crd/member", name)
}
