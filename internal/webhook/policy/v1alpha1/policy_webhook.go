// Package v1alpha1 serves the admission webhooks of policy.meridian.io/v1alpha1: what the CRD
// schema cannot say about a GlobalNetworkPolicy, and that a tier in use is not deleted.
package v1alpha1

import (
	"context"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/ipblock"
)

// +kubebuilder:webhook:path=/validate-policy-meridian-io-v1alpha1-globalnetworkpolicy,mutating=false,failurePolicy=fail,sideEffects=None,groups=policy.meridian.io,resources=globalnetworkpolicies,verbs=create;update,versions=v1alpha1,name=vglobalnetworkpolicy-v1alpha1.policy.meridian.io,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-policy-meridian-io-v1alpha1-tier,mutating=false,failurePolicy=fail,sideEffects=None,groups=policy.meridian.io,resources=tiers,verbs=create;update;delete,versions=v1alpha1,name=vtier-v1alpha1.policy.meridian.io,admissionReviewVersions=v1
// +kubebuilder:rbac:groups=policy.meridian.io,resources=tiers;globalnetworkpolicies,verbs=get;list;watch

// MaxExpandedCIDRs bounds the plain CIDRs a rule's ipBlocks expand into once their excepts are
// subtracted (Antrea and the upstream ClusterNetworkPolicy carry no excepts).
const MaxExpandedCIDRs = 1000

// GlobalNetworkPolicyValidator rejects policies that no member form could hold as written.
type GlobalNetworkPolicyValidator struct {
	// HubReader reads Tiers (uncached: a tier created a moment ago must be found).
	HubReader client.Reader
}

// TierValidator refuses to delete a tier that policies use.
type TierValidator struct {
	HubReader client.Reader
}

var (
	_ admission.Validator[*policyv1alpha1.GlobalNetworkPolicy] = GlobalNetworkPolicyValidator{}
	_ admission.Validator[*policyv1alpha1.Tier]                = TierValidator{}
)

// SetupWebhooksWithManager registers both validating webhooks with the manager.
func SetupWebhooksWithManager(mgr ctrl.Manager) error {
	if err := ctrl.NewWebhookManagedBy(mgr, &policyv1alpha1.GlobalNetworkPolicy{}).
		WithValidator(GlobalNetworkPolicyValidator{HubReader: mgr.GetAPIReader()}).Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &policyv1alpha1.Tier{}).
		WithValidator(TierValidator{HubReader: mgr.GetAPIReader()}).Complete()
}

// ValidateCreate validates a new GlobalNetworkPolicy.
func (v GlobalNetworkPolicyValidator) ValidateCreate(ctx context.Context, g *policyv1alpha1.GlobalNetworkPolicy) (admission.Warnings, error) {
	return v.validate(ctx, g)
}

// ValidateUpdate validates a changed GlobalNetworkPolicy.
func (v GlobalNetworkPolicyValidator) ValidateUpdate(ctx context.Context, _, g *policyv1alpha1.GlobalNetworkPolicy) (admission.Warnings, error) {
	return v.validate(ctx, g)
}

// ValidateDelete allows every deletion.
func (GlobalNetworkPolicyValidator) ValidateDelete(context.Context, *policyv1alpha1.GlobalNetworkPolicy) (admission.Warnings, error) {
	return nil, nil
}

func (v GlobalNetworkPolicyValidator) validate(ctx context.Context, g *policyv1alpha1.GlobalNetworkPolicy) (admission.Warnings, error) {
	errs, warnings := ValidateGlobalNetworkPolicy(g)
	tier := &policyv1alpha1.Tier{}
	if err := v.HubReader.Get(ctx, client.ObjectKey{Name: g.TierName()}, tier); apierrors.IsNotFound(err) {
		known := &policyv1alpha1.TierList{}
		names := []string{}
		if err := v.HubReader.List(ctx, known); err == nil {
			for _, t := range known.Items {
				names = append(names, t.Name)
			}
			sort.Strings(names)
		}
		hint := "or use one of: " + strings.Join(names, ", ")
		if len(names) == 0 {
			// The manager creates the default tiers when it starts; a policy applied just before
			// (a fresh install applied in one go) finds none.
			hint = "no Tier exists yet: the manager creates the default tiers when it starts and reports ready (/readyz) once they exist, so wait for it (or for `kubectl get tiers` to list them) and apply again"
		}
		errs = append(errs, field.NotFound(field.NewPath("spec", "tier"),
			fmt.Sprintf("%s: create the Tier first, %s", g.TierName(), hint)))
	} else if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("read Tier %s: %w", g.TierName(), err))
	} else if tier.IsBaseline() {
		for _, dir := range []struct {
			name  string
			rules []policyv1alpha1.Rule
		}{{"ingress", g.Spec.Ingress}, {"egress", g.Spec.Egress}} {
			for _, r := range dir.rules {
				if r.Action == policyv1alpha1.ActionPass {
					warnings = append(warnings, fmt.Sprintf("spec.%s rule %s: Pass in the baseline tier allows (nothing is evaluated after the baseline tier)", dir.name, r.Name))
				}
			}
		}
	}
	if len(errs) == 0 {
		return warnings, nil
	}
	return warnings, apierrors.NewInvalid(policyv1alpha1.GroupVersion.WithKind("GlobalNetworkPolicy").GroupKind(), g.Name, errs)
}

// ValidateGlobalNetworkPolicy returns what is wrong with a policy (each error saying what to fix)
// and warnings about what is legal but likely not meant. The tier's existence needs the hub and
// is checked by the validator.
func ValidateGlobalNetworkPolicy(g *policyv1alpha1.GlobalNetworkPolicy) (field.ErrorList, []string) {
	var errs field.ErrorList
	var warnings []string
	for _, msg := range validation.IsDNS1123Label(g.Name) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), g.Name, "names the policy's objects in the members, so it must be a DNS label: "+msg))
	}
	spec := field.NewPath("spec")
	errs = append(errs, validatePlacement(g.Spec.Placement, spec.Child("placement"))...)

	applied := spec.Child("appliedTo")
	a := g.Spec.AppliedTo
	if a.NamespaceSelector == nil && a.PodSelector == nil {
		errs = append(errs, field.Required(applied, "set namespaceSelector or podSelector; write podSelector: {} to apply the policy to every pod"))
	}
	errs = append(errs, validateSelector(a.NamespaceSelector, applied.Child("namespaceSelector"))...)
	errs = append(errs, validateSelector(a.PodSelector, applied.Child("podSelector"))...)
	if onlyNegative(a.NamespaceSelector, a.PodSelector) {
		errs = append(errs, field.Invalid(applied, describe(a.NamespaceSelector, a.PodSelector),
			"selects every pod except a few, across every namespace of every cluster, by accident more often than not: add a positive requirement (matchLabels, In or Exists), or write podSelector: {} to mean every pod"))
	}
	if len(g.Spec.Ingress)+len(g.Spec.Egress) == 0 {
		errs = append(errs, field.Required(spec, "a GlobalNetworkPolicy needs at least one ingress or egress rule"))
	}
	for _, dir := range []struct {
		name   string
		rules  []policyv1alpha1.Rule
		egress bool
	}{{"ingress", g.Spec.Ingress, false}, {"egress", g.Spec.Egress, true}} {
		if len(dir.rules) > policyv1alpha1.MaxRulesPerDirection {
			errs = append(errs, field.TooMany(spec.Child(dir.name), len(dir.rules), policyv1alpha1.MaxRulesPerDirection))
		}
		seen := map[string]bool{}
		for i, r := range dir.rules {
			p := spec.Child(dir.name).Index(i)
			if seen[r.Name] {
				errs = append(errs, field.Duplicate(p.Child("name"), r.Name))
			}
			seen[r.Name] = true
			e, w := validateRule(r, p, dir.egress)
			errs, warnings = append(errs, e...), append(warnings, w...)
		}
	}
	return errs, warnings
}

func validatePlacement(pl fleetv1alpha1.Placement, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s := pl.ClusterSelector; s != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(s, metav1validation.LabelSelectorValidationOptions{}, p.Child("clusterSelector"))...)
	} else if len(pl.ClusterNames) == 0 {
		errs = append(errs, field.Required(p, "set placement.clusterSelector ({} selects every cluster) or list placement.clusterNames"))
	}
	for i, n := range pl.ClusterNames {
		for _, msg := range validation.IsDNS1123Label(n) {
			errs = append(errs, field.Invalid(p.Child("clusterNames").Index(i), n, "must be a MemberCluster name: "+msg))
		}
	}
	return errs
}

func validateSelector(s *metav1.LabelSelector, p *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	return metav1validation.ValidateLabelSelector(s, metav1validation.LabelSelectorValidationOptions{}, p)
}

// onlyNegative: the selectors have requirements and every one of them excludes (NotIn,
// DoesNotExist), so they select nearly everything.
func onlyNegative(sels ...*metav1.LabelSelector) bool {
	n := 0
	for _, s := range sels {
		if s == nil {
			continue
		}
		if len(s.MatchLabels) > 0 {
			return false
		}
		for _, r := range s.MatchExpressions {
			if r.Operator == metav1.LabelSelectorOpIn || r.Operator == metav1.LabelSelectorOpExists {
				return false
			}
			n++
		}
	}
	return n > 0
}

func describe(sels ...*metav1.LabelSelector) string {
	var parts []string
	for _, s := range sels {
		if s != nil {
			parts = append(parts, metav1.FormatLabelSelector(s))
		}
	}
	return strings.Join(parts, "; ")
}

func validateRule(r policyv1alpha1.Rule, p *field.Path, egress bool) (field.ErrorList, []string) {
	var errs field.ErrorList
	var warnings []string
	if len(r.Peers) == 0 {
		errs = append(errs, field.Required(p.Child("peers"), "list at least one peer; an ipBlock 0.0.0.0/0 (and ::/0) matches every address"))
	}
	if len(r.Peers) > policyv1alpha1.MaxPeersPerRule {
		errs = append(errs, field.TooMany(p.Child("peers"), len(r.Peers), policyv1alpha1.MaxPeersPerRule))
	}
	if len(r.Ports) > policyv1alpha1.MaxPortsPerRule {
		errs = append(errs, field.TooMany(p.Child("ports"), len(r.Ports), policyv1alpha1.MaxPortsPerRule))
	}
	hasBlock, clusterSet, expanded := false, false, 0
	for i, peer := range r.Peers {
		pp := p.Child("peers").Index(i)
		selectors := peer.NamespaceSelector != nil || peer.PodSelector != nil
		switch {
		case peer.IPBlock != nil && selectors:
			errs = append(errs, field.Invalid(pp, "ipBlock and selectors", "a peer sets either ipBlock or namespaceSelector/podSelector; split it into two peers"))
		case peer.IPBlock == nil && !selectors:
			errs = append(errs, field.Required(pp, "set ipBlock, or namespaceSelector/podSelector (podSelector: {} for every pod)"))
		}
		if peer.IPBlock != nil {
			hasBlock = true
			if peer.Scope == policyv1alpha1.ScopeClusterSet {
				errs = append(errs, field.Invalid(pp.Child("scope"), peer.Scope, "scope applies to selector peers only; remove it from the ipBlock peer"))
			}
			if len(peer.IPBlock.Except) > policyv1alpha1.MaxExceptsPerBlock {
				errs = append(errs, field.TooMany(pp.Child("ipBlock", "except"), len(peer.IPBlock.Except), policyv1alpha1.MaxExceptsPerBlock))
			}
			b, err := ipblock.Parse(peer.IPBlock.CIDR, peer.IPBlock.Except)
			if err != nil {
				errs = append(errs, field.Invalid(pp.Child("ipBlock"), peer.IPBlock.CIDR, err.Error()+"; every except must be a CIDR inside cidr"))
				continue
			}
			expanded += len(b.Prefixes())
			continue
		}
		errs = append(errs, validateSelector(peer.NamespaceSelector, pp.Child("namespaceSelector"))...)
		errs = append(errs, validateSelector(peer.PodSelector, pp.Child("podSelector"))...)
		if peer.ScopeOrDefault() == policyv1alpha1.ScopeClusterSet {
			clusterSet = true
		}
	}
	if expanded > MaxExpandedCIDRs {
		errs = append(errs, field.Invalid(p.Child("peers"), expanded, fmt.Sprintf(
			"the ipBlocks' excepts expand into %d CIDRs in members whose form has no excepts (Antrea, ClusterNetworkPolicy); at most %d: use fewer or wider excepts, or split the rule", expanded, MaxExpandedCIDRs)))
	}
	named := false
	for i, port := range r.Ports {
		pp := p.Child("ports").Index(i)
		switch {
		case port.Port == nil:
			if port.EndPort != nil {
				errs = append(errs, field.Required(pp.Child("port"), "endPort ends a range that port starts; set port"))
			}
		case port.Port.Type == intstr.String:
			named = true
			for _, msg := range validation.IsValidPortName(port.Port.StrVal) {
				errs = append(errs, field.Invalid(pp.Child("port"), port.Port.StrVal, "must be a port number or a container port name: "+msg))
			}
			if port.EndPort != nil {
				errs = append(errs, field.Invalid(pp.Child("endPort"), *port.EndPort, "a named port cannot start a range; use a port number"))
			}
		default:
			if port.Port.IntVal < 1 || port.Port.IntVal > 65535 {
				errs = append(errs, field.Invalid(pp.Child("port"), port.Port.IntVal, "must be a port number from 1 to 65535"))
			}
			if port.EndPort != nil && *port.EndPort < port.Port.IntVal {
				errs = append(errs, field.Invalid(pp.Child("endPort"), *port.EndPort, fmt.Sprintf("must be at least port (%d)", port.Port.IntVal)))
			}
		}
	}
	if named && egress && hasBlock {
		errs = append(errs, field.Invalid(p.Child("ports"), "named port", "a named port resolves on pods, never on an ipBlock destination; put the ipBlock peers in a rule of their own with port numbers"))
	}
	if named && egress && clusterSet {
		warnings = append(warnings, fmt.Sprintf("%s: a named port matches only destinations in the source's own cluster; pods of other members match port numbers only", p))
	}
	return errs, warnings
}

// ValidateCreate validates a new Tier.
func (TierValidator) ValidateCreate(_ context.Context, t *policyv1alpha1.Tier) (admission.Warnings, error) {
	return nil, validateTier(t)
}

// ValidateUpdate validates a changed Tier.
func (TierValidator) ValidateUpdate(_ context.Context, _, t *policyv1alpha1.Tier) (admission.Warnings, error) {
	return nil, validateTier(t)
}

func validateTier(t *policyv1alpha1.Tier) error {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(t.Name) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), t.Name, "names the tier in the members, so it must be a DNS label: "+msg))
	}
	if t.Spec.Priority < 1 || t.Spec.Priority > 255 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "priority"), t.Spec.Priority, "must be from 1 to 255 (lower is evaluated first)"))
	}
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(policyv1alpha1.GroupVersion.WithKind("Tier").GroupKind(), t.Name, errs)
}

// ValidateDelete refuses to delete a tier that GlobalNetworkPolicies use, naming them.
func (v TierValidator) ValidateDelete(ctx context.Context, t *policyv1alpha1.Tier) (admission.Warnings, error) {
	list := &policyv1alpha1.GlobalNetworkPolicyList{}
	if err := v.HubReader.List(ctx, list); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("list GlobalNetworkPolicies: %w", err))
	}
	var users []string
	for i := range list.Items {
		if list.Items[i].TierName() == t.Name && list.Items[i].DeletionTimestamp.IsZero() {
			users = append(users, list.Items[i].Name)
		}
	}
	if len(users) == 0 {
		return nil, nil
	}
	sort.Strings(users)
	shown := users
	if len(shown) > 10 {
		shown = append(shown[:10:10], fmt.Sprintf("and %d more", len(users)-10))
	}
	return nil, apierrors.NewForbidden(policyv1alpha1.GroupVersion.WithResource("tiers").GroupResource(), t.Name,
		fmt.Errorf("the tier is in use by GlobalNetworkPolicies %s: move them to another tier or delete them first", strings.Join(shown, ", ")))
}
