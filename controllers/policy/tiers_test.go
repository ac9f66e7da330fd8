package policy

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// The manager is not ready until every default Tier exists on the hub, whoever created them;
// then it stays ready.
func TestDefaultTiersReadyWaitsForEveryDefaultTier(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := policyv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	hub := fake.NewClientBuilder().WithScheme(scheme).Build()
	ctx := context.Background()
	ready := DefaultTiersReady(hub)

	err := ready(nil)
	if err == nil || !strings.Contains(err.Error(), "emergency") || !strings.Contains(err.Error(), "baseline") {
		t.Fatalf("no tier on the hub: %v, want an error naming the missing tiers", err)
	}
	// All but one: still not ready, and the message names the one missing.
	for _, d := range policyv1alpha1.DefaultTiers[1:] {
		if err := hub.Create(ctx, &policyv1alpha1.Tier{ObjectMeta: metav1.ObjectMeta{Name: d.Name}, Spec: policyv1alpha1.TierSpec{Priority: d.Priority}}); err != nil {
			t.Fatal(err)
		}
	}
	first := policyv1alpha1.DefaultTiers[0].Name
	if err := ready(nil); err == nil || !strings.Contains(err.Error(), "Tiers "+first+" do not exist") {
		t.Fatalf("%s missing: %v", first, err)
	}
	// The leader's creation, as DefaultTiers.Start does it.
	if err := (&DefaultTiers{HubClient: hub}).Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ready(nil); err != nil {
		t.Fatalf("every default tier exists: %v", err)
	}
	// A default tier the user deletes later does not make the manager unready.
	if err := hub.Delete(ctx, &policyv1alpha1.Tier{ObjectMeta: metav1.ObjectMeta{Name: first}}); err != nil {
		t.Fatal(err)
	}
	if err := ready(nil); err != nil {
		t.Fatalf("after a user deleted %s: %v", first, err)
	}
}
