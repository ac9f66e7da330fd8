package antrea

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

func pol(name, tier string, prio int32) translate.Policy {
	g := &policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{}}}}
	g.Name = name
	return translate.Policy{GNP: g, Tier: tier, TierPriority: prio, Ingress: []translate.Rule{{Name: "r", Action: policyv1alpha1.ActionDrop, Selectors: []translate.Selectors{{}}}}}
}

func TestTiers(t *testing.T) {
	res, err := Translate([]translate.Policy{
		pol("a", "securityops", 100), // Antrea's static tier
		pol("b", "team", 120),        // a Meridian tier
		pol("c", "clash", 150),       // networkops holds 150
	})
	if err != nil {
		t.Fatal(err)
	}
	tiers := map[string]string{}
	for _, o := range res.Objects {
		u := o.(*unstructured.Unstructured)
		if u.GetKind() == "ClusterNetworkPolicy" {
			tier, _, _ := unstructured.NestedString(u.Object, "spec", "tier")
			tiers[u.GetName()] = tier
		} else {
			tiers["Tier/"+u.GetName()] = "created"
		}
	}
	if tiers["meridian-a"] != "securityops" || tiers["meridian-b"] != "meridian-team" || tiers["Tier/meridian-team"] != "created" {
		t.Errorf("objects: %v", tiers)
	}
	if _, ok := tiers["meridian-c"]; ok || res.Policies[2].Enforcement != policyv1alpha1.EnforcementUnsupported ||
		!strings.Contains(res.Policies[2].Rules[0].Message, "networkops") {
		t.Errorf("clash: %+v, objects %v", res.Policies[2], tiers)
	}
}

// Every field the translator writes is in the CRD schema of crds.yaml.
func TestSchemaHoldsTheFieldsWritten(t *testing.T) {
	var crds []map[string]any
	for _, doc := range strings.Split(string(CRDs), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		if m != nil && m["kind"] == "CustomResourceDefinition" {
			crds = append(crds, m)
		}
	}
	schemas := map[string]map[string]any{}
	for _, c := range crds {
		spec := c["spec"].(map[string]any)
		kind := spec["names"].(map[string]any)["kind"].(string)
		v := spec["versions"].([]any)[0].(map[string]any)
		schemas[kind] = v["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any)
	}
	p := pol("a", "team", 120)
	p.Egress = []translate.Rule{{Name: "e", Action: policyv1alpha1.ActionAllow, Blocks: []policyv1alpha1.IPBlock{{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}}, Ports: []policyv1alpha1.Port{{Protocol: "UDP"}}}}
	res, err := Translate([]translate.Policy{p})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Objects {
		u := o.(*unstructured.Unstructured)
		if s, ok := schemas[u.GetKind()]; !ok {
			t.Errorf("no schema for %s", u.GetKind())
		} else {
			checkFields(t, u.GetKind(), u.Object, s)
		}
	}
}

func checkFields(t *testing.T, path string, v any, schema map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		if props == nil {
			return // an object the schema leaves open (metadata, label maps)
		}
		for k, child := range x {
			cs, ok := props[k].(map[string]any)
			if !ok {
				t.Errorf("%s.%s is written but not in the CRD schema", path, k)
				continue
			}
			checkFields(t, path+"."+k, child, cs)
		}
	case []any:
		items, _ := schema["items"].(map[string]any)
		for _, child := range x {
			checkFields(t, path+"[]", child, items)
		}
	}
}
