package mcs

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	mcscrd "sigs.k8s.io/mcs-api/config/crd"
	"sigs.k8s.io/yaml"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

// NeedsCRDs says whether Meridian should install the Multi-Cluster Services CRDs into a member
// in this state: when they are absent, or keep them when Meridian installed them.
func NeedsCRDs(state CRDState) bool { return state == CRDsAbsent || state == CRDsOurs }

// CRDWork is the ClusterWork that installs the ServiceExport and ServiceImport CRDs into a
// member. Its policy is Orphan: removing Meridian never deletes users' exports.
func CRDWork(member, hubNamespace string) (*fleetv1alpha1.ClusterWork, error) {
	w := &fleetv1alpha1.ClusterWork{
		ObjectMeta: metav1.ObjectMeta{Namespace: hubNamespace, Name: netv1alpha1.CRDWorkName,
			Labels: map[string]string{fleetv1alpha1.MemberClusterLabel: member}, Finalizers: []string{fleetv1alpha1.WorkFinalizer}},
		Spec: fleetv1alpha1.ClusterWorkSpec{DeletionPolicy: fleetv1alpha1.DeletionPolicyOrphan},
	}
	for _, y := range [][]byte{mcscrd.ServiceExportCRD, mcscrd.ServiceImportCRD} {
		raw, err := yaml.YAMLToJSON(y)
		if err != nil {
			return nil, fmt.Errorf("read the Multi-Cluster Services CRDs: %w", err)
		}
		w.Spec.Objects = append(w.Spec.Objects, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	return w, nil
}
