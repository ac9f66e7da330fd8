// Package antrea translates GlobalNetworkPolicies into Antrea's ClusterNetworkPolicy and Tier
// (crd.antrea.io/v1beta1). Antrea evaluates tiers, priorities, rule order and the four actions as
// docs/policy.md does, so the form is exact; the default tiers are Antrea's own static tiers.
package antrea

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/ipblock"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

// NamePrefix prefixes the Antrea objects Meridian writes.
const NamePrefix = "meridian-"

// maxUserTierPriority: Antrea keeps the priorities above it for its application and baseline tiers.
const maxUserTierPriority = 250

// Translate writes every policy whose tier Antrea can order as the hub does.
func Translate(policies []translate.Policy) (translate.Result, error) {
	var res translate.Result
	places, tiers := Number(policies)
	for i, p := range policies {
		o, enf, err := TranslatePolicy(p, places[i])
		if err != nil {
			return res, err
		}
		if o != nil {
			res.Objects = append(res.Objects, o)
		}
		res.Policies = append(res.Policies, enf)
	}
	objs, err := TierObjects(tiers)
	if err != nil {
		return res, err
	}
	res.Objects = append(res.Objects, objs...)
	return res, nil
}

// Number places the policies, given in evaluation order, in Antrea's tiers: each its tier (or
// why it has none) and its priority there, counted from 1 in each tier. It reads only the
// policies' tiers and order. tiers are the Meridian tiers to write, by name.
func Number(policies []translate.Policy) (places []translate.Place, tiers []*Tier) {
	taken := map[int32]string{}
	for name, prio := range StaticTiers {
		taken[prio] = name
	}
	created := map[string]*Tier{}
	next := map[string]int32{}
	places = make([]translate.Place, len(policies))
	for i, p := range policies {
		tier, err := antreaTier(p, taken, created)
		if err != nil {
			places[i] = translate.Place{Reason: policyv1alpha1.TierPriorityConflictReason, Message: err.Error()}
			continue
		}
		next[tier]++
		places[i] = translate.Place{Tier: tier, Priority: next[tier]}
	}
	for _, t := range created {
		tiers = append(tiers, t)
	}
	sort.Slice(tiers, func(i, j int) bool { return tiers[i].Name < tiers[j].Name })
	return places, tiers
}

// TranslatePolicy writes one policy at its place (from Number); nil when the place refuses it.
func TranslatePolicy(p translate.Policy, place translate.Place) (client.Object, translate.Enforcement, error) {
	enf := translate.Enforcement{Policy: p.GNP.Name, Enforcement: policyv1alpha1.EnforcementExact}
	if !place.Placed() {
		place.Refuse(p, &enf)
		return nil, enf, nil
	}
	cnp := &ClusterNetworkPolicy{Spec: ClusterNetworkPolicySpec{
		Tier:      place.Tier,
		Priority:  float64(place.Priority),
		AppliedTo: []Peer{{NamespaceSelector: p.GNP.Spec.AppliedTo.NamespaceSelector.DeepCopy(), PodSelector: translate.EveryPod(p.GNP.Spec.AppliedTo.PodSelector)}},
		Ingress:   rules(p, p.Ingress, true),
		Egress:    rules(p, p.Egress, false),
	}}
	cnp.APIVersion, cnp.Kind = Group+"/"+Version, "ClusterNetworkPolicy"
	cnp.Name = NamePrefix + p.GNP.Name
	u, err := toUnstructured(cnp)
	if err != nil {
		return nil, enf, err
	}
	return u, enf, nil
}

// TierObjects are the Meridian tiers (from Number) as objects to write.
func TierObjects(tiers []*Tier) ([]client.Object, error) {
	out := make([]client.Object, 0, len(tiers))
	for _, t := range tiers {
		u, err := toUnstructured(t)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// antreaTier names the Antrea tier of a policy, creating a Meridian tier where Antrea has no
// static tier with the same name and priority.
func antreaTier(p translate.Policy, taken map[int32]string, tiers map[string]*Tier) (string, error) {
	if p.Baseline {
		return policyv1alpha1.TierBaseline, nil
	}
	if prio, ok := StaticTiers[p.Tier]; ok && prio == p.TierPriority && p.Tier != policyv1alpha1.TierBaseline {
		return p.Tier, nil
	}
	name := NamePrefix + p.Tier
	if _, ok := tiers[name]; ok {
		return name, nil
	}
	if holder, ok := taken[p.TierPriority]; ok {
		return "", fmt.Errorf("tier %s has priority %d, which Antrea's tier %s holds in this member; give the tier a priority of its own", p.Tier, p.TierPriority, holder)
	}
	if p.TierPriority > maxUserTierPriority {
		return "", fmt.Errorf("tier %s has priority %d; Antrea orders only priorities up to %d before its application tier", p.Tier, p.TierPriority, maxUserTierPriority)
	}
	t := &Tier{Spec: TierSpec{Priority: p.TierPriority, Description: "Meridian tier " + p.Tier}}
	t.APIVersion, t.Kind = Group+"/"+Version, "Tier"
	t.Name = name
	tiers[name] = t
	taken[p.TierPriority] = name
	return name, nil
}

func rules(p translate.Policy, rs []translate.Rule, ingress bool) []Rule {
	out := make([]Rule, 0, len(rs))
	for _, r := range rs {
		var peers []Peer
		for _, s := range r.Selectors {
			peers = append(peers, Peer{NamespaceSelector: s.NamespaceSelector.DeepCopy(), PodSelector: translate.EveryPod(s.PodSelector)})
		}
		for _, b := range r.Blocks {
			blk, err := ipblock.Parse(b.CIDR, b.Except)
			if err != nil {
				continue // refused by the webhook; matches nothing here
			}
			for _, pre := range blk.Prefixes() {
				peers = append(peers, Peer{IPBlock: &IPBlock{CIDR: pre.String()}})
			}
		}
		for _, a := range r.Addresses {
			peers = append(peers, Peer{IPBlock: &IPBlock{CIDR: translate.HostPrefix(a).String()}})
		}
		if len(peers) == 0 {
			continue // an Antrea rule without peers matches everything; this one matches nothing
		}
		action := string(r.Action)
		if p.Baseline && r.Action == policyv1alpha1.ActionPass {
			action = string(policyv1alpha1.ActionAllow) // nothing follows the baseline tier
		}
		ar := Rule{Name: r.Name, Action: action}
		for _, port := range r.Ports {
			np := NetworkPolicyPort{Protocol: string(port.ProtocolOrDefault()), EndPort: port.EndPort}
			if port.Port != nil {
				v := *port.Port
				np.Port = &v
			}
			ar.Ports = append(ar.Ports, np)
		}
		if ingress {
			ar.From = peers
		} else {
			ar.To = peers
		}
		out = append(out, ar)
	}
	return out
}

func toUnstructured(obj any) (client.Object, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %T: %w", obj, err)
	}
	return &unstructured.Unstructured{Object: m}, nil
}
