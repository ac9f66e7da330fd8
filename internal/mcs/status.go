package mcs

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

// ImportState is where a service's import stands in one member, read from its import Work.
type ImportState string

const (
	// Imported: the member holds the import as wanted, with its VIP for a ClusterSetIP service.
	Imported ImportState = "Imported"
	// ImportPending: Meridian is still writing or applying it.
	ImportPending ImportState = "Pending"
	// ImportUnreachable: the member cannot be reached; what it holds is unknown.
	ImportUnreachable ImportState = "Unreachable"
	// ImportFailed: the member refused part of the import, or its Work's name is taken.
	ImportFailed ImportState = "Failed"
)

// MemberImport is a service's import in one member.
type MemberImport struct {
	Cluster string
	State   ImportState
	Message string
}

// WorkImportState reads a member's import from its ClusterWork (nil: not created yet). needVIP
// says the import is a ClusterSetIP one: it is not in place before the member allocated the VIP.
func WorkImportState(w *fleetv1alpha1.ClusterWork, needVIP, haveVIP bool) (ImportState, string) {
	switch {
	case w == nil:
		return ImportPending, "its ClusterWork is not created yet"
	case !w.DeletionTimestamp.IsZero():
		return ImportPending, "its ClusterWork is being replaced"
	}
	applied := meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.AppliedCondition)
	if applied != nil && applied.Status == metav1.ConditionUnknown {
		return ImportUnreachable, applied.Message
	}
	if applied == nil {
		return ImportPending, "the work syncer has not applied the import yet"
	}
	// A Work whose newer spec (new endpoints, say) is still being applied keeps the state of
	// what the member holds now: an import in place stays imported while it is updated, so
	// that Ready does not flap (and cost two status writes) on every endpoint change.
	for _, o := range w.Status.Objects {
		if o.State == fleetv1alpha1.ObjectFailed || o.State == fleetv1alpha1.ObjectConflict {
			return ImportFailed, fmt.Sprintf("%s %s: %s", o.Kind, o.Name, o.Message)
		}
	}
	if applied.Status != metav1.ConditionTrue {
		return ImportPending, applied.Message
	}
	if needVIP && !haveVIP {
		return ImportPending, "the member has not allocated the VIP yet"
	}
	return Imported, ""
}

// ImportingClusters are the clusters that hold the import.
func ImportingClusters(imports []MemberImport) []string {
	var out []string
	for _, i := range imports {
		if i.State == Imported {
			out = append(out, i.Cluster)
		}
	}
	return out
}

// ExportConditions are what an export's ServiceExport says: Valid from the verdict, Conflict
// from the other exports, Ready from the imports' real state in every importing member. Ready is
// True only when every member that should import the service holds it.
func ExportConditions(v Verdict, imports []MemberImport) []metav1.Condition {
	valid := metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionValid), Status: metav1.ConditionTrue,
		Reason: string(mcsv1beta1.ServiceExportReasonValid), Message: "The Service can be exported."}
	ready := metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionReady), Status: metav1.ConditionTrue,
		Reason: string(mcsv1beta1.ServiceExportReasonExported)}
	conflict := metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionConflict), Status: metav1.ConditionFalse,
		Reason: string(mcsv1beta1.ServiceExportReasonNoConflicts), Message: "The exports of this service agree."}
	if v.InvalidReason != "" {
		valid.Status, valid.Reason, valid.Message = metav1.ConditionFalse, string(v.InvalidReason), v.InvalidMessage
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonFailed), "Not exported: "+v.InvalidMessage
		return []metav1.Condition{valid, ready}
	}
	if v.ConflictReason != "" {
		conflict.Status, conflict.Reason, conflict.Message = metav1.ConditionTrue, string(v.ConflictReason), v.ConflictMessage
	}
	in := ImportingClusters(imports)
	var failed, waiting []string
	for _, i := range imports {
		switch i.State {
		case ImportFailed:
			failed = append(failed, fmt.Sprintf("%s (%s)", i.Cluster, i.Message))
		case ImportUnreachable:
			waiting = append(waiting, i.Cluster+" (unreachable)")
		case ImportPending:
			waiting = append(waiting, fmt.Sprintf("%s (%s)", i.Cluster, i.Message))
		}
	}
	imported := fmt.Sprintf("Imported into %d of %d clusters of the cluster set", len(in), len(imports))
	switch {
	case len(failed) > 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonFailed)
		ready.Message = fmt.Sprintf("%s; the import failed in %s.", imported, strings.Join(failed, ", "))
		if len(waiting) > 0 {
			ready.Message += " Waiting for " + strings.Join(waiting, ", ") + "."
		}
	case len(waiting) > 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonPending)
		ready.Message = fmt.Sprintf("%s; waiting for %s.", imported, strings.Join(waiting, ", "))
	default:
		ready.Message = fmt.Sprintf("Imported into %d clusters of the cluster set: %s.", len(in), strings.Join(in, ", "))
		if len(in) == 0 {
			ready.Message = "Exported; no cluster of the set has the namespace to import it into."
		}
	}
	return []metav1.Condition{valid, ready, conflict}
}

// DisabledConditions are what a ServiceExport says in a namespace whose GlobalNamespace turns
// service discovery off.
func DisabledConditions() []metav1.Condition {
	return []metav1.Condition{
		{Type: string(mcsv1beta1.ServiceExportConditionValid), Status: metav1.ConditionFalse, Reason: ServiceDisabledReason,
			Message: "The namespace's GlobalNamespace sets serviceDiscovery.mode None: nothing is exported from or imported into it."},
		{Type: string(mcsv1beta1.ServiceExportConditionReady), Status: metav1.ConditionFalse, Reason: string(mcsv1beta1.ServiceExportReasonFailed), Message: "Not exported."},
	}
}

// ServiceDisabledReason is the Valid=False reason of a ServiceExport in a namespace whose
// GlobalNamespace turns service discovery off.
const ServiceDisabledReason = "ServiceDiscoveryDisabled"

// ServiceStatus is the hub's view of an imported service, for its GlobalNamespace (nil when
// nothing is imported).
func ServiceStatus(name string, imp *Import, verdicts map[string]Verdict, imports []MemberImport) *netv1alpha1.GlobalServiceStatus {
	if imp == nil {
		return nil
	}
	st := &netv1alpha1.GlobalServiceStatus{Name: name, Type: string(imp.Type), SourceClusters: imp.Sources,
		ImportingClusters: ImportingClusters(imports), ReadyEndpoints: int32(imp.ReadyCount())}
	for _, p := range imp.Ports {
		st.Ports = append(st.Ports, netv1alpha1.ServicePort{Name: p.Name, Protocol: string(p.Protocol), Port: p.Port, AppProtocol: p.AppProtocol})
	}
	for _, c := range imp.Sources {
		if m := verdicts[c].ConflictMessage; m != "" {
			st.Conflict = m
			break
		}
	}
	return st
}

// ExportStatus is the server-side apply of a ServiceExport's status that sets want, or nil when
// the ServiceExport says that already.
func ExportStatus(se *mcsv1beta1.ServiceExport, want []metav1.Condition) *unstructured.Unstructured {
	conds := append([]metav1.Condition(nil), se.Status.Conditions...)
	changed := false
	for _, c := range want {
		c.ObservedGeneration = se.Generation
		old := meta.FindStatusCondition(conds, c.Type)
		if old == nil || old.Status != c.Status || old.Reason != c.Reason || old.Message != c.Message || old.ObservedGeneration != c.ObservedGeneration {
			changed = true
		}
		meta.SetStatusCondition(&conds, c)
	}
	if !changed {
		return nil
	}
	var mine []any
	for _, c := range conds {
		for _, w := range want {
			if c.Type == w.Type {
				u, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(&c)
				mine = append(mine, u)
			}
		}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": mcsv1beta1.SchemeGroupVersion.String(), "kind": "ServiceExport",
		"metadata": map[string]any{"namespace": se.Namespace, "name": se.Name},
		"status":   map[string]any{"conditions": mine},
	}}
}

// ImportStatus is the server-side apply of a ServiceImport's status naming the exporting
// clusters, or nil when it names them already.
func ImportStatus(si *mcsv1beta1.ServiceImport, sources []string) *unstructured.Unstructured {
	have := make([]string, 0, len(si.Status.Clusters))
	for _, c := range si.Status.Clusters {
		have = append(have, c.Cluster)
	}
	if equality.Semantic.DeepEqual(have, sources) {
		return nil
	}
	clusters := make([]any, 0, len(sources))
	for _, c := range sources {
		clusters = append(clusters, map[string]any{"cluster": c})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": mcsv1beta1.SchemeGroupVersion.String(), "kind": "ServiceImport",
		"metadata": map[string]any{"namespace": si.Namespace, "name": si.Name},
		"status":   map[string]any{"clusters": clusters},
	}}
}
