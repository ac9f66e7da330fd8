package compile

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/names"
	"github.com/meridian-io/meridian/internal/policy/translate"
	"github.com/meridian-io/meridian/internal/policy/translate/antrea"
	"github.com/meridian-io/meridian/internal/policy/translate/cnp"
	"github.com/meridian-io/meridian/internal/policy/translate/member"
	"github.com/meridian-io/meridian/internal/policy/translate/netpol"
)

// Member is one member's compiled policies.
type Member struct {
	Form policyv1alpha1.Form
	// Works are the desired ClusterWorks by policy name; an Unsupported policy has none.
	Works map[string]*fleetv1alpha1.ClusterWork
	// Shared is the Work of objects the policies share (Antrea Tiers); nil when there are none.
	Shared *fleetv1alpha1.ClusterWork
	// Enforcement of every policy by name.
	Enforcement map[string]translate.Enforcement
	// Translated names the policies the compilation that made this Member translated, in
	// evaluation order; the others' Works and enforcement are the member's previous
	// compilation's (Cache.Compile, which returns the previous Member itself when it translated
	// nothing).
	Translated []string
}

// WorkName is the ClusterWork of one policy in a member (in the member's hub namespace).
func WorkName(policy string) string {
	return names.Join(names.DNSSubdomain, policyv1alpha1.WorkNamePrefix, policy)
}

// Compile orders and resolves the member's policies and translates them into the form, the
// member whole, and splits the objects by the policy they came from. Cache.Compile gives the
// same result translating only what changed.
func Compile(form policyv1alpha1.Form, in translate.Input) (*Member, error) {
	form = knownForm(form)
	resolved, err := translate.Resolve(in)
	if err != nil {
		return nil, err
	}
	var res translate.Result
	switch form {
	case policyv1alpha1.FormMeridian:
		res = member.Translate(resolved)
	case policyv1alpha1.FormAntrea:
		if res, err = antrea.Translate(resolved); err != nil {
			return nil, fmt.Errorf("translate for member %s: %w", in.Cluster, err)
		}
	case policyv1alpha1.FormClusterNetworkPolicy:
		res = cnp.Translate(resolved)
	default:
		res = netpol.Translate(resolved, in.Namespaces)
	}
	m := &Member{Form: form, Works: map[string]*fleetv1alpha1.ClusterWork{}, Enforcement: map[string]translate.Enforcement{}}
	byPolicy := map[string][]client.Object{}
	var shared []client.Object
	for _, p := range res.Policies {
		m.Enforcement[p.Policy] = p
		m.Translated = append(m.Translated, p.Policy)
	}
	for _, o := range res.Objects {
		owner := ownerOf(form, o, m.Enforcement)
		if owner == "" {
			shared = append(shared, o)
			continue
		}
		byPolicy[owner] = append(byPolicy[owner], o)
	}
	for _, p := range res.Policies {
		if !p.Supported() {
			continue
		}
		w, err := desiredWork(in.Cluster, p.Policy, form, byPolicy[p.Policy])
		if err != nil {
			return nil, err
		}
		m.Works[p.Policy] = w
	}
	if len(shared) > 0 {
		if m.Shared, err = desiredWork(in.Cluster, "", form, shared); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// knownForm is the form a member is compiled in: NetworkPolicy, which every member serves, for
// a form Compile does not know.
func knownForm(f policyv1alpha1.Form) policyv1alpha1.Form {
	switch f {
	case policyv1alpha1.FormMeridian, policyv1alpha1.FormAntrea, policyv1alpha1.FormClusterNetworkPolicy:
		return f
	}
	return policyv1alpha1.FormNetworkPolicy
}

var chunkSuffix = regexp.MustCompile(`-[0-9]+$`)

// ownerOf names the policy an object was translated from: every form names its objects after
// the policy (meridian-<policy>, chunks meridian-<policy>-<n>, Meridian's own form <policy>).
// Objects of no policy (Antrea Tiers) are shared.
func ownerOf(form policyv1alpha1.Form, o client.Object, policies map[string]translate.Enforcement) string {
	if o.GetObjectKind().GroupVersionKind().Kind == "Tier" {
		return ""
	}
	name := o.GetName()
	if form != policyv1alpha1.FormMeridian {
		name = strings.TrimPrefix(name, netpol.NamePrefix)
	}
	if _, ok := policies[name]; ok {
		return name
	}
	if base := chunkSuffix.ReplaceAllString(name, ""); base != name {
		if _, ok := policies[base]; ok {
			return base
		}
	}
	return ""
}

func desiredWork(cluster, policy string, form policyv1alpha1.Form, objs []client.Object) (*fleetv1alpha1.ClusterWork, error) {
	name := policyv1alpha1.SharedWorkName
	if policy != "" {
		name = WorkName(policy)
	}
	w := &fleetv1alpha1.ClusterWork{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: fleetv1alpha1.MemberClusterNamespacePrefix + cluster,
			Labels: map[string]string{
				policyv1alpha1.GlobalNetworkPolicyLabel: policy,
				policyv1alpha1.FormLabel:                string(form),
				fleetv1alpha1.MemberClusterLabel:        cluster,
			},
			Finalizers: []string{fleetv1alpha1.WorkFinalizer},
		},
		Spec: fleetv1alpha1.ClusterWorkSpec{DeletionPolicy: fleetv1alpha1.DeletionPolicyDelete},
	}
	for _, o := range objs {
		raw, err := json.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("encode %s for member %s: %w", o.GetName(), cluster, err)
		}
		w.Spec.Objects = append(w.Spec.Objects, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	switch {
	case policy == "":
	case form == policyv1alpha1.FormAntrea:
		// Antrea reports how many nodes enforce each policy.
		w.Spec.StatusFeedback = []fleetv1alpha1.FeedbackRule{{Group: antrea.Group, Kind: "ClusterNetworkPolicy", Fields: []fleetv1alpha1.FeedbackField{
			{Name: NodesRealizedField, JSONPath: ".status.currentNodesRealized"},
			{Name: NodesDesiredField, JSONPath: ".status.desiredNodesRealized"},
		}}}
	case form == policyv1alpha1.FormMeridian:
		// Meridian's agents report it too, for the generation they observed.
		w.Spec.StatusFeedback = []fleetv1alpha1.FeedbackRule{{Group: MeridianKind.Group, Kind: MeridianKind.Kind, Fields: []fleetv1alpha1.FeedbackField{
			{Name: NodesRealizedField, JSONPath: ".status.nodesRealized"},
			{Name: NodesDesiredField, JSONPath: ".status.nodesDesired"},
			{Name: GenerationField, JSONPath: ".metadata.generation"},
			{Name: ObservedGenerationField, JSONPath: ".status.observedGeneration"},
		}}}
	}
	return w, nil
}

// Feedback names of the node counts (Antrea's, Meridian's agents') and of the generation they
// are about (Meridian's).
const (
	NodesRealizedField      = "nodesRealized"
	NodesDesiredField       = "nodesDesired"
	GenerationField         = "generation"
	ObservedGenerationField = "observedGeneration"
)
