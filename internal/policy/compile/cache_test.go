package compile

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

func TestCacheRecompilesOnlyWhenTheInputChanges(t *testing.T) {
	c := &Cache{}
	compile := func(in translate.Input) *Member {
		t.Helper()
		m, _, err := c.Compile(policyv1alpha1.FormAntrea, in)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := compile(fixture())
	if again := compile(fixture()); again != first {
		t.Fatal("the same input was compiled again")
	}
	in := fixture()
	in.Policies[0].Status.Summary = "1/2" // status is not an input
	if again := compile(in); again != first {
		t.Fatal("a status change recompiled the member")
	}

	for name, change := range map[string]func(*translate.Input){
		"a rule's port": func(in *translate.Input) {
			in.Policies[0].Spec.Ingress[0].Ports = []policyv1alpha1.Port{{Port: new(intstr.FromInt32(443))}}
		},
		"a peer pod's address": func(in *translate.Input) { in.Pods[0].IP = "10.1.0.9" },
		"a tier's priority":    func(in *translate.Input) { in.Tiers[0].Spec.Priority = 120 },
		"a policy recreated":   func(in *translate.Input) { in.Policies[0].UID = "other" },
	} {
		in := fixture()
		change(&in)
		got := compile(in)
		if got == first {
			t.Errorf("%s: the cached compilation was returned", name)
		}
		want, err := Compile(policyv1alpha1.FormAntrea, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Works) != len(want.Works) || got.Works["allow-db"].Spec.Objects[0].String() != want.Works["allow-db"].Spec.Objects[0].String() {
			t.Errorf("%s: the cache's compilation differs from Compile's", name)
		}
		first = compile(fixture()) // back to the fixture for the next change
	}
	if again := compile(otherMember()); again == first {
		t.Error("another member's input returned this member's compilation")
	}

	// Namespaces are an input of the NetworkPolicy form only (one object per namespace).
	in = fixture()
	in.Namespaces[0].Labels = map[string]string{"team": "x"}
	if again := compile(in); again != first {
		t.Error("a namespace's labels translated the Antrea form again")
	}
	np, _, err := c.Compile(policyv1alpha1.FormNetworkPolicy, fixture())
	if err != nil {
		t.Fatal(err)
	}
	if again, _, _ := c.Compile(policyv1alpha1.FormNetworkPolicy, in); again == np || len(again.Translated) != len(again.Enforcement) {
		t.Errorf("a namespace's labels: the NetworkPolicy form translated %v again, want every policy", again.Translated)
	}
}

// otherMember is the fixture compiled for another member.
func otherMember() translate.Input {
	in := fixture()
	in.Cluster = "b"
	return in
}

func TestCacheNamesThePoliciesAChangeAffects(t *testing.T) {
	c := &Cache{}
	_, changed, err := c.Compile(policyv1alpha1.FormAntrea, fixture())
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 2 { // allow-db and drop-db are placed on member a
		t.Fatalf("first compilation: changed %v, want every policy of the member", changed)
	}
	if _, changed, _ = c.Compile(policyv1alpha1.FormAntrea, fixture()); len(changed) != 0 {
		t.Fatalf("same input: changed %v", changed)
	}

	in := fixture()
	in.Policies[0].Spec.Ingress[0].Ports = []policyv1alpha1.Port{{Port: new(intstr.FromInt32(443))}}
	if _, changed, _ = c.Compile(policyv1alpha1.FormAntrea, in); len(changed) != 1 || changed[0] != "allow-db" {
		t.Fatalf("a rule of allow-db changed: changed %v, want [allow-db]", changed)
	}

	// Antrea numbers priorities within a tier: drop-db moving behind allow-db in application
	// changes drop-db alone.
	in.Policies[1].Spec.Tier = "application"
	in.Policies[1].Spec.Priority = ptr.To[int32](1099) // allow-db has the default, 1000
	if _, changed, _ = c.Compile(policyv1alpha1.FormAntrea, in); len(changed) != 1 || changed[0] != "drop-db" {
		t.Fatalf("drop-db moved behind allow-db (Antrea): changed %v, want [drop-db]", changed)
	}
	// allow-db moving behind drop-db renumbers drop-db too, although drop-db did not change.
	in.Policies[0].Spec.Priority = ptr.To[int32](1100)
	if _, changed, _ = c.Compile(policyv1alpha1.FormAntrea, in); len(changed) != 2 {
		t.Fatalf("allow-db moved behind drop-db: changed %v, want both", changed)
	}
}
