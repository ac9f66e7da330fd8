package globalns

import (
	"encoding/json"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

func member(name string, labels map[string]string) fleetv1alpha1.MemberCluster {
	return fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func TestSelect(t *testing.T) {
	now := metav1.Now()
	gone := member("gone", map[string]string{"env": "prod"})
	gone.DeletionTimestamp = &now
	members := []fleetv1alpha1.MemberCluster{
		member("c", map[string]string{"env": "prod"}), member("a", map[string]string{"env": "dev"}),
		member("b", map[string]string{"env": "prod"}), gone,
	}
	cases := []struct {
		name      string
		placement fleetv1alpha1.Placement
		want      []string
	}{
		{"selector", fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}, []string{"b", "c"}},
		{"empty selector selects all", fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}}, []string{"a", "b", "c"}},
		{"names", fleetv1alpha1.Placement{ClusterNames: []string{"a", "missing"}}, []string{"a"}},
		{"selector or names", fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}, ClusterNames: []string{"a"}}, []string{"a", "b", "c"}},
		{"a member being deleted is not selected", fleetv1alpha1.Placement{ClusterNames: []string{"gone"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &netv1alpha1.GlobalNamespace{Spec: netv1alpha1.GlobalNamespaceSpec{Placement: tc.placement}}
			got, err := Select(g, members)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestDesiredWork(t *testing.T) {
	g := &netv1alpha1.GlobalNamespace{
		ObjectMeta: metav1.ObjectMeta{Name: "shop"},
		Spec: netv1alpha1.GlobalNamespaceSpec{
			Overrides:      []netv1alpha1.NamespaceOverride{{Cluster: "old", NamespaceName: "shop-legacy"}},
			Labels:         map[string]string{"team": "shop"},
			Annotations:    map[string]string{"a": "b"},
			DeletionPolicy: netv1alpha1.NamespaceDelete,
			Adopt:          true,
		},
	}
	for member, wantNS := range map[string]string{"new": "shop", "old": "shop-legacy"} {
		w, err := DesiredWork(g, member)
		if err != nil {
			t.Fatal(err)
		}
		if w.Namespace != "meridian-member-"+member || w.Name != "gns-shop" {
			t.Errorf("Work %s/%s", w.Namespace, w.Name)
		}
		if w.Spec.DeletionPolicy != fleetv1alpha1.DeletionPolicyDelete || !w.Spec.Adopt {
			t.Errorf("policy %s adopt %v", w.Spec.DeletionPolicy, w.Spec.Adopt)
		}
		ns := &corev1.Namespace{}
		if err := json.Unmarshal(w.Spec.Objects[0].Raw, ns); err != nil {
			t.Fatal(err)
		}
		if ns.Kind != "Namespace" || ns.Name != wantNS || ns.Labels["team"] != "shop" || ns.Labels[netv1alpha1.GlobalNamespaceLabel] != "shop" || ns.Annotations["a"] != "b" {
			t.Errorf("namespace %+v", ns)
		}
	}
	g.Spec.DeletionPolicy = netv1alpha1.NamespaceRetain
	w, _ := DesiredWork(g, "new")
	if w.Spec.DeletionPolicy != fleetv1alpha1.DeletionPolicyOrphan {
		t.Errorf("Retain maps to %s", w.Spec.DeletionPolicy)
	}

	// Released: the retained namespace loses the GlobalNamespace's label, keeps the rest.
	released, err := Released(w)
	if err != nil || released == nil {
		t.Fatalf("Released: %v %v", released, err)
	}
	ns := &corev1.Namespace{}
	if err := json.Unmarshal(released.Spec.Objects[0].Raw, ns); err != nil {
		t.Fatal(err)
	}
	if _, ok := ns.Labels[netv1alpha1.GlobalNamespaceLabel]; ok || ns.Labels["team"] != "shop" || ns.Name != "shop" {
		t.Errorf("released namespace %+v", ns)
	}
	if again, _ := Released(released); again != nil {
		t.Error("a released Work is released again")
	}
	if d, _ := DesiredWork(&netv1alpha1.GlobalNamespace{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: netv1alpha1.GlobalNamespaceSpec{DeletionPolicy: netv1alpha1.NamespaceDelete}}, "new"); d != nil {
		if r, _ := Released(d); r != nil {
			t.Error("a Work that deletes its namespace is released")
		}
	}
}

func TestClusterState(t *testing.T) {
	work := func(gen, observed int64, applied metav1.ConditionStatus, state fleetv1alpha1.ObjectState) *fleetv1alpha1.ClusterWork {
		w := &fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Generation: gen}}
		w.Status.ObservedGeneration = observed
		w.Status.Conditions = []metav1.Condition{{Type: fleetv1alpha1.AppliedCondition, Status: applied, Message: "m"}}
		w.Status.Objects = []fleetv1alpha1.ObjectStatus{{State: state, Message: "object message"}}
		return w
	}
	now := metav1.Now()
	deleting := work(1, 1, metav1.ConditionTrue, fleetv1alpha1.ObjectApplied)
	deleting.DeletionTimestamp = &now
	cases := []struct {
		name string
		w    *fleetv1alpha1.ClusterWork
		want netv1alpha1.ClusterNamespaceState
	}{
		{"no Work", nil, netv1alpha1.ClusterNamespacePending},
		{"applied", work(2, 2, metav1.ConditionTrue, fleetv1alpha1.ObjectApplied), netv1alpha1.ClusterNamespaceApplied},
		{"stale status", work(2, 1, metav1.ConditionTrue, fleetv1alpha1.ObjectApplied), netv1alpha1.ClusterNamespacePending},
		{"conflict", work(1, 1, metav1.ConditionFalse, fleetv1alpha1.ObjectConflict), netv1alpha1.ClusterNamespaceConflict},
		{"refused", work(1, 1, metav1.ConditionFalse, fleetv1alpha1.ObjectFailed), netv1alpha1.ClusterNamespaceFailed},
		{"unreachable", work(2, 1, metav1.ConditionUnknown, fleetv1alpha1.ObjectApplied), netv1alpha1.ClusterNamespaceUnreachable},
		{"deleting", deleting, netv1alpha1.ClusterNamespaceRemoving},
	}
	for _, tc := range cases {
		if got, _ := ClusterState(tc.w); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestSetStatusFollowsKstatus checks the conditions against kstatus itself, the library kubectl
// wait, Argo CD and Flux read status with.
func TestSetStatusFollowsKstatus(t *testing.T) {
	cl := func(name string, s netv1alpha1.ClusterNamespaceState) netv1alpha1.ClusterNamespaceStatus {
		return netv1alpha1.ClusterNamespaceStatus{Cluster: name, Namespace: "ns", State: s, Message: "why"}
	}
	cases := []struct {
		name     string
		clusters []netv1alpha1.ClusterNamespaceStatus
		want     status.Status
		reason   string
		summary  string
		passErr  error
	}{
		// A pass whose Work writes failed: the clusters' last reports say Applied, but the new
		// generation is not carried out: not Ready, observedGeneration stays.
		{"write failed", []netv1alpha1.ClusterNamespaceStatus{cl("a", "Applied"), cl("b", "Applied")}, status.InProgressStatus, netv1alpha1.WorkWriteFailedReason, "2/2", errors.New("hub refused")},
		{"write failed while stalled", []netv1alpha1.ClusterNamespaceStatus{cl("a", "Conflict")}, status.InProgressStatus, netv1alpha1.WorkWriteFailedReason, "0/1", errors.New("hub refused")},
		{"all applied", []netv1alpha1.ClusterNamespaceStatus{cl("a", "Applied"), cl("b", "Applied")}, status.CurrentStatus, netv1alpha1.AllAppliedReason, "2/2", nil},
		{"no clusters", nil, status.CurrentStatus, netv1alpha1.NoClustersReason, "0/0", nil},
		{"pending", []netv1alpha1.ClusterNamespaceStatus{cl("a", "Applied"), cl("b", "Pending")}, status.InProgressStatus, netv1alpha1.ApplyPendingReason, "1/2", nil},
		{"unreachable", []netv1alpha1.ClusterNamespaceStatus{cl("a", "Unreachable")}, status.InProgressStatus, netv1alpha1.MembersUnreachableReason, "0/1", nil},
		{"removing", []netv1alpha1.ClusterNamespaceStatus{cl("a", "Applied"), cl("b", "Removing")}, status.InProgressStatus, netv1alpha1.RemovingReason, "1/1", nil},
		{"conflict wins over pending", []netv1alpha1.ClusterNamespaceStatus{cl("a", "Conflict"), cl("b", "Pending")}, status.FailedStatus, netv1alpha1.ConflictReason, "0/2", nil},
		{"refused", []netv1alpha1.ClusterNamespaceStatus{cl("a", "Failed")}, status.FailedStatus, netv1alpha1.ApplyFailedReason, "0/1", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &netv1alpha1.GlobalNamespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Generation: 3}}
			g.Status.ObservedGeneration = 2
			SetStatus(g, tc.clusters, tc.passErr)
			wantObserved := int64(3)
			if tc.passErr != nil {
				wantObserved = 2
			}
			if g.Status.Summary != tc.summary || g.Status.ObservedGeneration != wantObserved {
				t.Errorf("summary %q observedGeneration %d, want %q %d", g.Status.Summary, g.Status.ObservedGeneration, tc.summary, wantObserved)
			}
			if tc.passErr != nil && meta.IsStatusConditionTrue(g.Status.Conditions, netv1alpha1.ReadyCondition) {
				t.Error("Ready after a failed pass")
			}
			if c := meta.FindStatusCondition(g.Status.Conditions, netv1alpha1.ReadyCondition); c == nil || c.Reason != tc.reason {
				t.Errorf("Ready %+v, want reason %s", c, tc.reason)
			}
			if meta.IsStatusConditionTrue(g.Status.Conditions, netv1alpha1.ReconcilingCondition) && meta.IsStatusConditionTrue(g.Status.Conditions, netv1alpha1.StalledCondition) {
				t.Error("Reconciling and Stalled both True")
			}
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(g)
			if err != nil {
				t.Fatal(err)
			}
			res, err := status.Compute(&unstructured.Unstructured{Object: u})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.want {
				t.Errorf("kstatus %s (%s), want %s", res.Status, res.Message, tc.want)
			}
		})
	}
}

func TestNextWorkReleasesARenamedNamespaceFirst(t *testing.T) {
	g := &netv1alpha1.GlobalNamespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"},
		Spec: netv1alpha1.GlobalNamespaceSpec{DeletionPolicy: netv1alpha1.NamespaceRetain}}
	onHub, err := DesiredWork(g, "m1")
	if err != nil {
		t.Fatal(err)
	}
	onHub.Generation = 1
	applied := func(w *fleetv1alpha1.ClusterWork) *fleetv1alpha1.ClusterWork {
		w = w.DeepCopy()
		w.Status.ObservedGeneration = w.Generation
		ns, _ := namespaceOf(w)
		w.Status.Objects = []fleetv1alpha1.ObjectStatus{{Kind: "Namespace", Name: ns, State: fleetv1alpha1.ObjectApplied}}
		return w
	}
	onHub = applied(onHub)
	renamed := g.DeepCopy()
	renamed.Spec.Overrides = []netv1alpha1.NamespaceOverride{{Cluster: "m1", NamespaceName: "shop-eu"}}
	desired, _ := DesiredWork(renamed, "m1")

	// Unchanged name, or no Work yet: the desired Work at once.
	if next, rel, err := NextWork(onHub, onHub); err != nil || next != onHub || rel != "" {
		t.Errorf("same name: %v %q %v", next, rel, err)
	}
	if next, rel, _ := NextWork(nil, desired); next != desired || rel != "" {
		t.Errorf("no Work yet: %v %q", next, rel)
	}

	// Renamed: first the old namespace without the label.
	next, rel, err := NextWork(onHub, desired)
	if err != nil || rel != "shop" || next == nil {
		t.Fatalf("rename, step 1: %v %q %v", next, rel, err)
	}
	var ns corev1.Namespace
	if err := json.Unmarshal(next.Spec.Objects[0].Raw, &ns); err != nil {
		t.Fatal(err)
	}
	if ns.Name != "shop" || ns.Labels[netv1alpha1.GlobalNamespaceLabel] != "" {
		t.Errorf("step 1 writes namespace %q labels %v; want shop without the GlobalNamespace label", ns.Name, ns.Labels)
	}

	// Written, not applied yet: nothing to write, still releasing.
	released := next.DeepCopy()
	released.Generation = 2
	if n, rel, _ := NextWork(released, desired); n != nil || rel != "shop" {
		t.Errorf("release pending: %v %q; want nothing to write, releasing shop", n, rel)
	}
	// Applied (or unreachable: still waiting).
	unreachable := released.DeepCopy()
	unreachable.Status.Conditions = []metav1.Condition{{Type: fleetv1alpha1.AppliedCondition, Status: metav1.ConditionUnknown}}
	if n, _, _ := NextWork(unreachable, desired); n != nil {
		t.Errorf("member unreachable during the release: %v; want nothing to write", n)
	}
	if n, rel, _ := NextWork(applied(released), desired); n != desired || rel != "" {
		t.Errorf("released: %v %q; want the renamed Work", n, rel)
	}

	// Delete policy: the old namespace is deleted with the rename; nothing to release.
	del := renamed.DeepCopy()
	del.Spec.DeletionPolicy = netv1alpha1.NamespaceDelete
	desiredDel, _ := DesiredWork(del, "m1")
	if n, rel, _ := NextWork(onHub, desiredDel); n != desiredDel || rel != "" {
		t.Errorf("Delete policy: %v %q; want the renamed Work at once", n, rel)
	}
	// Retain newly set together with the rename on a Work that deleted: released first too.
	gDel := g.DeepCopy()
	gDel.Spec.DeletionPolicy = netv1alpha1.NamespaceDelete
	onHubDel, _ := DesiredWork(gDel, "m1")
	if n, rel, _ := NextWork(applied(onHubDel), desired); n == nil || rel != "shop" || n.Spec.DeletionPolicy != fleetv1alpha1.DeletionPolicyOrphan {
		t.Errorf("Delete to Retain with a rename: %v %q; want the release under Orphan", n, rel)
	}
}
