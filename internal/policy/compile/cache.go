package compile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"maps"
	"slices"
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
	"github.com/meridian-io/meridian/internal/policy/translate/antrea"
	"github.com/meridian-io/meridian/internal/policy/translate/cnp"
	"github.com/meridian-io/meridian/internal/policy/translate/member"
	"github.com/meridian-io/meridian/internal/policy/translate/netpol"
)

// Cache remembers each member's last compilation policy by policy, each with what it was
// compiled from, and compiles a member's new input incrementally: a policy is translated again
// only when its own input changed (its spec, tier, placement, the addresses its ClusterSet peers
// resolve to, and for the NetworkPolicy form the member's namespaces) or when its place in the
// form's numbering did (translate.Place: Antrea's priorities within a tier, the upstream
// ClusterNetworkPolicy's within the Admin or Baseline tier). The numbering itself is redone
// over every policy of the member on each input, but it reads only tiers, priorities and, for
// the upstream form, how many objects each policy is split into; it translates nothing. Every
// policy of a member is reconciled after a change of any of them, and each pass asks for the
// member's compilation; the cache answers all but the first from memory. Safe for concurrent
// use.
type Cache struct {
	mu      sync.Mutex
	members map[string]*memberState
}

type memberState struct {
	form     policyv1alpha1.Form
	policies map[string]*compiled
	// tiers says which Antrea tiers the shared Work holds (tiersKey).
	tiers  string
	member *Member
}

type digest [sha256.Size]byte

// compiled is one policy's compilation in a member, with what it was compiled from.
type compiled struct {
	// spec is the digest of the policy's spec, taken at resourceVersion version of object uid.
	uid     types.UID
	version string
	spec    digest
	// key covers the policy's own input but the pods: its identity and spec, its tier, its
	// placement and, for the NetworkPolicy form, the member's namespaces.
	key digest
	// pods covers the pods its ClusterSet peers can select; zero without such peers.
	pods     digest
	resolved translate.Policy
	prepared cnp.Prepared // the upstream ClusterNetworkPolicy form only
	// fresh: the policy's own input changed since it was last translated.
	fresh bool
	place translate.Place
	work  *fleetv1alpha1.ClusterWork
	enf   translate.Enforcement
}

// Compile returns what Compile(form, in) returns, translating only what changed since the
// member's last compilation. The result is shared: callers must not modify it (DeepCopy a Work
// before writing it); when nothing was translated again it is the previous result itself.
// changed names the policies whose Work or enforcement differ from the member's previous
// compilation (every policy of the member when there was none): whoever compiles a new input
// first sees what it changed for every policy of the member, so the caller re-queues exactly
// those.
//
// A policy with a resourceVersion is taken to have the spec it had when last seen with that
// resourceVersion, as objects from an informer do; one without is read every time.
func (c *Cache) Compile(form policyv1alpha1.Form, in translate.Input) (m *Member, changed []string, err error) {
	form = knownForm(form)
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.members[in.Cluster]
	next, err := compileIncrementally(form, in, prev)
	if err != nil {
		return nil, nil, err
	}
	if c.members == nil {
		c.members = map[string]*memberState{}
	}
	c.members[in.Cluster] = next
	if prev == nil {
		return next.member, Changed(nil, next.member), nil
	}
	return next.member, changedSince(prev.member, next), nil
}

func compileIncrementally(form policyv1alpha1.Form, in translate.Input, prev *memberState) (*memberState, error) {
	var before map[string]*compiled
	if prev != nil && prev.form == form {
		before = prev.policies
	}
	tiers := translate.Tiers(in.Tiers)
	var namespaces digest
	if form == policyv1alpha1.FormNetworkPolicy {
		namespaces = namespacesDigest(in.Namespaces)
	}
	var pods map[string]digest // by cluster, on first need
	next := &memberState{form: form, policies: make(map[string]*compiled, len(in.Policies))}
	order := make([]*compiled, 0, len(in.Policies))
	for i := range in.Policies {
		g := &in.Policies[i]
		t, ok := tiers[g.TierName()]
		if !ok {
			return nil, fmt.Errorf("GlobalNetworkPolicy %s: tier %q does not exist", g.Name, g.TierName())
		}
		old := before[g.Name]
		e := &compiled{uid: g.UID, version: g.ResourceVersion}
		if old != nil && old.uid == g.UID && old.version == g.ResourceVersion && g.ResourceVersion != "" {
			e.spec = old.spec
		} else {
			raw, err := json.Marshal(g.Spec)
			if err != nil {
				return nil, fmt.Errorf("GlobalNetworkPolicy %s: %w", g.Name, err)
			}
			e.spec = sha256.Sum256(raw)
		}
		e.key = policyKey(g, e.spec, t, in.Placements[g.Name], namespaces)
		if hasClusterSetPeer(g) {
			if pods == nil {
				pods = podsDigests(in.Pods)
			}
			e.pods = peersDigest(pods, in.Placements[g.Name], in.Cluster)
		}
		switch {
		case old != nil && old.key == e.key && old.pods == e.pods:
			e.resolved, e.prepared = old.resolved, old.prepared
			e.resolved.GNP = g // the same spec; the input's object, not a former one's
		default:
			var err error
			if e.resolved, err = translate.ResolvePolicy(in, g, tiers); err != nil {
				return nil, err
			}
			if old != nil && old.key == e.key && sameAddresses(old.resolved, e.resolved) {
				e.prepared = old.prepared // pods moved, none its peers select
				break
			}
			e.fresh = true
			if form == policyv1alpha1.FormClusterNetworkPolicy {
				e.prepared = cnp.Prepare(e.resolved)
			}
		}
		next.policies[g.Name] = e
		order = append(order, e)
	}
	sort.SliceStable(order, func(i, j int) bool { return translate.Before(&order[i].resolved, &order[j].resolved) })

	var antreaTiers []*antrea.Tier
	switch form {
	case policyv1alpha1.FormAntrea:
		ps := make([]translate.Policy, len(order))
		for i, e := range order {
			ps[i] = e.resolved
		}
		var places []translate.Place
		places, antreaTiers = antrea.Number(ps)
		for i, e := range order {
			e.place = places[i]
		}
	case policyv1alpha1.FormClusterNetworkPolicy:
		ps := make([]cnp.Prepared, len(order))
		for i, e := range order {
			ps[i] = e.prepared
		}
		for i, place := range cnp.Number(ps) {
			order[i].place = place
		}
	}

	m := &Member{Form: form, Works: make(map[string]*fleetv1alpha1.ClusterWork, len(order)), Enforcement: make(map[string]translate.Enforcement, len(order))}
	for _, e := range order {
		name := e.resolved.GNP.Name
		if old := before[name]; !e.fresh && old != nil && old.place == e.place {
			e.work, e.enf = old.work, old.enf
		} else {
			var err error
			if e.work, e.enf, err = translatePolicy(form, in, e); err != nil {
				return nil, err
			}
			m.Translated = append(m.Translated, name)
		}
		m.Enforcement[name] = e.enf
		if e.work != nil {
			m.Works[name] = e.work
		}
	}
	if len(antreaTiers) > 0 {
		next.tiers = tiersKey(antreaTiers)
		if before != nil && prev.tiers == next.tiers && prev.member.Shared != nil {
			m.Shared = prev.member.Shared
		} else {
			objs, err := antrea.TierObjects(antreaTiers)
			if err != nil {
				return nil, err
			}
			if m.Shared, err = desiredWork(in.Cluster, "", form, objs); err != nil {
				return nil, err
			}
		}
	}
	next.member = m
	if before != nil && len(m.Translated) == 0 && len(before) == len(next.policies) && m.Shared == prev.member.Shared {
		next.member = prev.member // nothing translated, nothing gone: the same compilation
	}
	return next, nil
}

// translatePolicy translates one policy at its place into its Work; nil when the form cannot
// hold it.
func translatePolicy(form policyv1alpha1.Form, in translate.Input, e *compiled) (*fleetv1alpha1.ClusterWork, translate.Enforcement, error) {
	var objs []client.Object
	var enf translate.Enforcement
	switch form {
	case policyv1alpha1.FormMeridian:
		var o client.Object
		o, enf = member.TranslatePolicy(e.resolved)
		objs = []client.Object{o}
	case policyv1alpha1.FormAntrea:
		o, en, err := antrea.TranslatePolicy(e.resolved, e.place)
		if err != nil {
			return nil, en, fmt.Errorf("translate for member %s: %w", in.Cluster, err)
		}
		if enf = en; o != nil {
			objs = []client.Object{o}
		}
	case policyv1alpha1.FormClusterNetworkPolicy:
		objs, enf = cnp.TranslatePolicy(e.resolved, e.prepared, e.place)
	default:
		objs, enf = netpol.TranslatePolicy(e.resolved, in.Namespaces)
	}
	if !enf.Supported() {
		return nil, enf, nil
	}
	w, err := desiredWork(in.Cluster, e.resolved.GNP.Name, form, objs)
	return w, enf, err
}

// changedSince names the policies of next whose Work or enforcement differ from before's, and
// those before had that next has not, sorted. Only translated policies can differ: the others
// kept their Works.
func changedSince(before *Member, next *memberState) []string {
	m := next.member
	if m == before {
		return nil
	}
	var out []string
	for _, name := range m.Translated {
		if !equality.Semantic.DeepEqual(before.Enforcement[name], m.Enforcement[name]) || !sameWork(before.Works[name], m.Works[name]) {
			out = append(out, name)
		}
	}
	for name := range before.Enforcement {
		if _, ok := m.Enforcement[name]; !ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Changed names the policies whose Work or enforcement differ between two compilations of a
// member, sorted; every policy of b when a is nil.
func Changed(a, b *Member) []string {
	names := map[string]bool{}
	if a == nil {
		for p := range b.Enforcement {
			names[p] = true
		}
	} else {
		for _, x := range []*Member{a, b} {
			for p := range x.Enforcement {
				if !equality.Semantic.DeepEqual(a.Enforcement[p], b.Enforcement[p]) || !sameWork(a.Works[p], b.Works[p]) {
					names[p] = true
				}
			}
		}
	}
	out := make([]string, 0, len(names))
	for p := range names {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func sameWork(a, b *fleetv1alpha1.ClusterWork) bool {
	if a == nil || b == nil {
		return a == b
	}
	// Both come from Compile's own encoding: equal objects are equal bytes, compared as such
	// (reflection over the bytes cost more than the compilation itself).
	if len(a.Spec.Objects) != len(b.Spec.Objects) || !maps.Equal(a.Labels, b.Labels) {
		return false
	}
	for i := range a.Spec.Objects {
		if !bytes.Equal(a.Spec.Objects[i].Raw, b.Spec.Objects[i].Raw) {
			return false
		}
	}
	as, bs := a.Spec, b.Spec
	as.Objects, bs.Objects = nil, nil
	return equality.Semantic.DeepEqual(as, bs)
}

// Forget drops a member's compilation (the member is gone).
func (c *Cache) Forget(member string) {
	c.mu.Lock()
	delete(c.members, member)
	c.mu.Unlock()
}

// sameAddresses says whether two resolutions of the same policy resolved their ClusterSet
// peers to the same addresses.
func sameAddresses(a, b translate.Policy) bool {
	same := func(x, y []translate.Rule) bool {
		return slices.EqualFunc(x, y, func(r, s translate.Rule) bool { return slices.Equal(r.Addresses, s.Addresses) })
	}
	return same(a.Ingress, b.Ingress) && same(a.Egress, b.Egress)
}

// keyBuf builds a digest of small values; strings are written with their lengths, so that two
// different sequences never write the same bytes.
type keyBuf []byte

func (b keyBuf) str(s string) keyBuf {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (b keyBuf) num(n int64) keyBuf { return binary.AppendVarint(b, n) }

func (b keyBuf) strs(ss []string) keyBuf {
	b = b.num(int64(len(ss)))
	for _, s := range ss {
		b = b.str(s)
	}
	return b
}

func (b keyBuf) labels(l map[string]string) keyBuf {
	b = b.num(int64(len(l)))
	var small [8]string // pods' label sets are small: sort their keys without allocating
	keys := small[:0]
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = b.str(k).str(l[k])
	}
	return b
}

func (b keyBuf) digest(d digest) keyBuf { return append(b, d[:]...) }

func policyKey(g *policyv1alpha1.GlobalNetworkPolicy, spec digest, t *policyv1alpha1.Tier, placement []string, namespaces digest) digest {
	var b keyBuf
	b = b.str(g.Name).str(string(g.UID)).num(g.Generation).digest(spec)
	b = b.str(t.Name).num(int64(t.Spec.Priority))
	if t.IsBaseline() {
		b = b.num(1)
	}
	b = b.strs(placement).digest(namespaces)
	return sha256.Sum256(b)
}

func namespacesDigest(ns []translate.Namespace) digest {
	var b keyBuf
	for _, n := range ns {
		b = b.str(n.Name).labels(n.Labels)
	}
	return sha256.Sum256(b)
}

// podsDigests digests the pods of each cluster.
func podsDigests(pods []translate.InventoryPod) map[string]digest {
	hashes := map[string]hash.Hash{}
	var b keyBuf
	for i := range pods {
		p := &pods[i]
		h := hashes[p.Cluster]
		if h == nil {
			h = sha256.New()
			hashes[p.Cluster] = h
		}
		b = b[:0].str(p.Namespace).str(p.IP).labels(p.Labels).labels(p.NamespaceLabels)
		h.Write(b)
	}
	out := make(map[string]digest, len(hashes))
	for c, h := range hashes {
		out[c] = digest(h.Sum(nil))
	}
	return out
}

// peersDigest digests the pods a policy placed on clusters can resolve its ClusterSet peers to
// in member: those of the other clusters of its placement.
func peersDigest(pods map[string]digest, placement []string, member string) digest {
	var b keyBuf
	for _, c := range placement {
		if c != member {
			b = b.str(c).digest(pods[c])
		}
	}
	return sha256.Sum256(b)
}

// tiersKey says which Antrea tiers (from antrea.Number) the shared Work holds.
func tiersKey(tiers []*antrea.Tier) string {
	var b keyBuf
	for _, t := range tiers {
		b = b.str(t.Name).num(int64(t.Spec.Priority)).str(t.Spec.Description)
	}
	return string(b)
}
