package v1alpha1

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

func TestValidateMemberCluster(t *testing.T) {
	secretRef := &fleetv1alpha1.KubeconfigSecretReference{Namespace: "meridian-system", Name: "east-kubeconfig"}
	clusterRef := &fleetv1alpha1.ClusterReference{Namespace: "fleet", Name: "east"}
	tests := []struct {
		name    string
		member  fleetv1alpha1.MemberCluster
		wantErr []string
	}{
		{name: "secret source", member: fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "east"},
			Spec: fleetv1alpha1.MemberClusterSpec{KubeconfigSecretRef: secretRef}}},
		{name: "cluster source", member: fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "east"},
			Spec: fleetv1alpha1.MemberClusterSpec{ClusterRef: clusterRef}}},
		{name: "longest name that fits", member: fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", fleetv1alpha1.MaxMemberClusterNameLength)},
			Spec: fleetv1alpha1.MemberClusterSpec{ClusterRef: clusterRef}}},
		{name: "no source", member: fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "east"}},
			wantErr: []string{"spec: Required value: set exactly one way to reach the member"}},
		{name: "both sources", member: fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "east"},
			Spec: fleetv1alpha1.MemberClusterSpec{KubeconfigSecretRef: secretRef, ClusterRef: clusterRef}},
			wantErr: []string{"spec.clusterRef: Forbidden: set exactly one"}},
		{name: "name one too long", member: fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", fleetv1alpha1.MaxMemberClusterNameLength+1)},
			Spec: fleetv1alpha1.MemberClusterSpec{ClusterRef: clusterRef}},
			wantErr: []string{"must be at most 47 characters so that the hub namespace"}},
		{name: "dotted name", member: fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "east.example.com"},
			Spec: fleetv1alpha1.MemberClusterSpec{ClusterRef: clusterRef}},
			wantErr: []string{"must be a DNS label"}},
		{name: "bad secret namespace", member: fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "east"},
			Spec: fleetv1alpha1.MemberClusterSpec{KubeconfigSecretRef: &fleetv1alpha1.KubeconfigSecretReference{Namespace: "Meridian_System", Name: "x"}}},
			wantErr: []string{"spec.kubeconfigSecretRef.namespace: Invalid value: \"Meridian_System\": must name a namespace"}},
		{name: "timeout over interval", member: fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "east"},
			Spec: fleetv1alpha1.MemberClusterSpec{ClusterRef: clusterRef, Probe: fleetv1alpha1.ProbeSettings{IntervalSeconds: 2, TimeoutSeconds: 3}}},
			wantErr: []string{"spec.probe.timeoutSeconds: Invalid value: 3: must not exceed spec.probe.intervalSeconds (2)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateMemberCluster(&tt.member)
			if len(errs) != len(tt.wantErr) {
				t.Fatalf("got %d errors %v, want %d %v", len(errs), errs, len(tt.wantErr), tt.wantErr)
			}
			for i, want := range tt.wantErr {
				if !strings.Contains(errs[i].Error(), want) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), want)
				}
			}
		})
	}
}

func FuzzValidateMemberCluster(f *testing.F) {
	f.Add("east", "meridian-system", "east-kubeconfig", "", "", int32(15), int32(5))
	f.Add("a.b", "", "", "fleet", "c", int32(0), int32(70))
	f.Fuzz(func(t *testing.T, name, secretNS, secretName, clusterNS, clusterName string, interval, timeout int32) {
		m := &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: fleetv1alpha1.MemberClusterSpec{Probe: fleetv1alpha1.ProbeSettings{IntervalSeconds: interval, TimeoutSeconds: timeout}}}
		if secretName != "" {
			m.Spec.KubeconfigSecretRef = &fleetv1alpha1.KubeconfigSecretReference{Namespace: secretNS, Name: secretName}
		}
		if clusterName != "" {
			m.Spec.ClusterRef = &fleetv1alpha1.ClusterReference{Namespace: clusterNS, Name: clusterName}
		}
		errs := ValidateMemberCluster(m)
		// An accepted MemberCluster always yields a valid hub namespace and one connection source.
		if len(errs) == 0 {
			if len(m.HubNamespace()) > 63 {
				t.Fatalf("accepted %q whose hub namespace is too long", name)
			}
			if (m.Spec.KubeconfigSecretRef == nil) == (m.Spec.ClusterRef == nil) {
				t.Fatalf("accepted a MemberCluster without exactly one source")
			}
		}
		for _, e := range errs {
			if e.Detail == "" && e.Type != "FieldValueRequired" {
				t.Fatalf("error without a message: %v", e)
			}
		}
	})
}

func TestValidateClusterWork(t *testing.T) {
	raw := func(s string) fleetv1alpha1.WorkObject {
		return fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: []byte(s)}}
	}
	cm := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"n"}}`
	big := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big","namespace":"n"},"data":{"x":"` + strings.Repeat("a", fleetv1alpha1.MaxClusterWorkBytes) + `"}}`
	tests := []struct {
		name        string
		work        fleetv1alpha1.ClusterWork
		wantErr     []string
		wantWarning bool
	}{
		{name: "valid", work: fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: "meridian-member-east", Name: "w"},
			Spec: fleetv1alpha1.ClusterWorkSpec{Objects: []fleetv1alpha1.WorkObject{raw(cm)}}}},
		{name: "outside a member namespace", wantWarning: true, work: fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "w"}}},
		{name: "object without kind", work: fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: "meridian-member-east", Name: "w"},
			Spec: fleetv1alpha1.ClusterWorkSpec{Objects: []fleetv1alpha1.WorkObject{raw(`{"apiVersion":"v1","metadata":{"name":"x"}}`)}}},
			wantErr: []string{"spec.objects[0]", "needs apiVersion and kind"}},
		{name: "duplicate", work: fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: "meridian-member-east", Name: "w"},
			Spec: fleetv1alpha1.ClusterWorkSpec{Objects: []fleetv1alpha1.WorkObject{raw(cm), raw(cm)}}},
			wantErr: []string{"spec.objects[1]", "repeats"}},
		{name: "too large", work: fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: "meridian-member-east", Name: "w"},
			Spec: fleetv1alpha1.ClusterWorkSpec{Objects: []fleetv1alpha1.WorkObject{raw(big)}}},
			wantErr: []string{"split them into several ClusterWorks"}},
		{name: "bad feedback path", work: fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: "meridian-member-east", Name: "w"},
			Spec: fleetv1alpha1.ClusterWorkSpec{StatusFeedback: []fleetv1alpha1.FeedbackRule{{Kind: "DaemonSet", Fields: []fleetv1alpha1.FeedbackField{{Name: "r", JSONPath: ".status[["}}}}}},
			wantErr: []string{"spec.statusFeedback[0].fields[0].jsonPath", "is not a JSONPath"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs, warnings := ValidateClusterWork(&tt.work)
			if (len(warnings) > 0) != tt.wantWarning {
				t.Errorf("warnings = %v, want some: %v", warnings, tt.wantWarning)
			}
			if len(tt.wantErr) == 0 {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("got %d errors %v, want 1", len(errs), errs)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(errs[0].Error(), want) {
					t.Errorf("error %q does not contain %q", errs[0].Error(), want)
				}
			}
		})
	}
}
