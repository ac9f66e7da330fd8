package compile

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"maps"
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

// Cache remembers the last compilation of each member with a fingerprint of what it was compiled
// from. A member is compiled whole, and every policy placed on it is reconciled after a change of
// any of them, so without it one change costs as many whole-member compilations as the member
// has policies; with it, one per member and input. Safe for concurrent use.
type Cache struct {
	mu      sync.Mutex
	members map[string]cached
}

type cached struct {
	key    [sha256.Size]byte
	member *Member
}

// Compile returns Compile(form, in), from the cache when the member was last compiled from the
// same input. The result is shared: callers must not modify it (DeepCopy a Work before writing
// it). When it compiles, changed names the policies whose Work or enforcement differ from the
// member's previous compilation (every policy of the member when there was none): whoever
// compiles a new input first sees what it changed for every policy of the member, so the
// caller re-queues exactly those.
func (c *Cache) Compile(form policyv1alpha1.Form, in translate.Input) (m *Member, changed []string, err error) {
	key, err := fingerprint(form, in)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, ok := c.members[in.Cluster]
	if ok && prev.key == key {
		return prev.member, nil, nil
	}
	// Compiling under the lock keeps one compilation per input when reconciles race.
	if m, err = Compile(form, in); err != nil {
		return nil, nil, err
	}
	if c.members == nil {
		c.members = map[string]cached{}
	}
	c.members[in.Cluster] = cached{key: key, member: m}
	return m, Changed(prev.member, m), nil
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

// fingerprint covers everything the translators read: the form, the member, its namespaces, the
// tiers' names and priorities, each policy's identity and spec (name, UID, generation and the
// spec itself, so that an object built without a generation is still told apart), the
// placements and the pods.
func fingerprint(form policyv1alpha1.Form, in translate.Input) ([sha256.Size]byte, error) {
	type tier struct {
		Name     string
		Priority int32
	}
	type policy struct {
		Name       string
		UID        types.UID
		Generation int64
		Spec       policyv1alpha1.GlobalNetworkPolicySpec
	}
	v := struct {
		Form       policyv1alpha1.Form
		Cluster    string
		Namespaces []translate.Namespace
		Tiers      []tier
		Policies   []policy
		Placements map[string][]string
		Pods       []translate.InventoryPod
	}{Form: form, Cluster: in.Cluster, Namespaces: in.Namespaces, Placements: in.Placements, Pods: in.Pods}
	for _, t := range in.Tiers {
		v.Tiers = append(v.Tiers, tier{t.Name, t.Spec.Priority})
	}
	for i := range in.Policies {
		g := &in.Policies[i]
		v.Policies = append(v.Policies, policy{g.Name, g.UID, g.Generation, g.Spec})
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(raw), nil
}
