package compile

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

// benchInput is make bench-policy's fleet as member a sees it: 100 policies over 40 apps, every
// fourth with a ClusterSet peer, and 1,000 pods in three members.
func benchInput() translate.Input {
	var tiers []policyv1alpha1.Tier
	for _, t := range policyv1alpha1.DefaultTiers {
		tiers = append(tiers, tier(t.Name, t.Priority))
	}
	members := []fleetv1alpha1.MemberCluster{memberCluster("a", nil), memberCluster("b", nil), memberCluster("c", nil)}
	app := func(i int) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%02d", i%40)}}
	}
	var policies []policyv1alpha1.GlobalNetworkPolicy
	for i := range 100 {
		g := policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{
			Tier: []string{"securityops", "platform", "application"}[i%3], Priority: ptr.To(int32(i)),
			Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
			AppliedTo: policyv1alpha1.AppliedTo{PodSelector: app(i)},
		}}
		g.Name = fmt.Sprintf("pol-%03d", i)
		g.UID, g.ResourceVersion = types.UID(g.Name), "1" // as the informer's objects have them
		r := policyv1alpha1.Rule{Name: "r", Action: policyv1alpha1.ActionAllow, Peers: []policyv1alpha1.Peer{{PodSelector: app(i + 1)}},
			Ports: []policyv1alpha1.Port{{Port: new(intstr.FromInt32(int32(1000 + i)))}}}
		switch i % 4 {
		case 0:
			r.Peers[0].Scope = policyv1alpha1.ScopeClusterSet
			g.Spec.Egress = []policyv1alpha1.Rule{r}
		case 1:
			r.Action = policyv1alpha1.ActionDrop
			g.Spec.Egress = []policyv1alpha1.Rule{r}
		default:
			g.Spec.Ingress = []policyv1alpha1.Rule{r}
		}
		policies = append(policies, g)
	}
	in := MemberInput("a", tiers, members, policies)
	in.Namespaces = []translate.Namespace{{Name: "bench"}}
	for i := range 1000 {
		in.Pods = append(in.Pods, translate.InventoryPod{Cluster: []string{"a", "b", "c"}[i%3], Namespace: "bench",
			Labels: map[string]string{"app": fmt.Sprintf("app-%02d", i%40)}, IP: fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)})
	}
	return in
}

func BenchmarkCompile(b *testing.B) {
	in := benchInput()
	for _, form := range []policyv1alpha1.Form{policyv1alpha1.FormAntrea, policyv1alpha1.FormClusterNetworkPolicy, policyv1alpha1.FormMeridian} {
		b.Run(string(form), func(b *testing.B) {
			for b.Loop() {
				if _, err := Compile(form, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("cached", func(b *testing.B) {
		c := &Cache{}
		for b.Loop() {
			if _, _, err := c.Compile(policyv1alpha1.FormAntrea, in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkChanged(b *testing.B) {
	in := benchInput()
	a, err := Compile(policyv1alpha1.FormAntrea, in)
	if err != nil {
		b.Fatal(err)
	}
	in.Policies[0].Spec.Egress[0].Ports = []policyv1alpha1.Port{{Port: new(intstr.FromInt32(443))}}
	c, err := Compile(policyv1alpha1.FormAntrea, in)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if got := Changed(a, c); len(got) != 1 {
			b.Fatalf("changed %v", got)
		}
	}
}

// BenchmarkCacheOneChange is the compile path of one hub change for one member, as the
// GlobalNetworkPolicy controller takes it: one policy's rule changes (its port, alternating
// between two values so that each pass is a new input; its resourceVersion moves, as the
// apiserver's does), then Cache.Compile, which names the policies the change affected.
func BenchmarkCacheOneChange(b *testing.B) {
	benchChanges(b, func(in *translate.Input, i int) {
		in.Policies[0].Spec.Egress[0].Ports = []policyv1alpha1.Port{{Port: new(intstr.FromInt32(int32(443 + i%2)))}}
		in.Policies[0].ResourceVersion = fmt.Sprint(i + 2)
	}, 1)
}

// BenchmarkCacheRenumber: a policy moves from last of its tier to second and back (a priority
// change), which renumbers the policies in between in the forms that number densely (Antrea:
// 32 of securityops' 34; the upstream ClusterNetworkPolicy: the same 32 in the Admin tier).
func BenchmarkCacheRenumber(b *testing.B) {
	last := 99 // pol-099, the securityops tier's last (priority 99)
	benchChanges(b, func(in *translate.Input, i int) {
		in.Policies[last].Spec.Priority = ptr.To(int32(99 * (i % 2))) // 0: after pol-000, by name
		in.Policies[last].ResourceVersion = fmt.Sprint(i + 2)
	}, 0)
}

// BenchmarkCachePodChange: a pod of another member that a ClusterSet peer selects changes its
// address (back and forth).
func BenchmarkCachePodChange(b *testing.B) {
	benchChanges(b, func(in *translate.Input, i int) {
		in.Pods[1].IP = fmt.Sprintf("198.19.0.%d", 1+i%2) // pod 1 is app-01 in member b
	}, 0)
}

// cpuTime is the process's CPU time (user and system) so far.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// benchChanges compiles, per form, the bench input changed by change(in, i) for the i-th pass;
// wantChanged > 0 asks that each pass name that many policies changed.
func benchChanges(b *testing.B, change func(in *translate.Input, i int), wantChanged int) {
	for _, form := range []policyv1alpha1.Form{policyv1alpha1.FormAntrea, policyv1alpha1.FormClusterNetworkPolicy, policyv1alpha1.FormMeridian, policyv1alpha1.FormNetworkPolicy} {
		b.Run(string(form), func(b *testing.B) {
			in := benchInput()
			c := &Cache{}
			if _, _, err := c.Compile(form, in); err != nil {
				b.Fatal(err)
			}
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				i++
				change(&in, i)
				if _, changed, err := c.Compile(form, in); err != nil || wantChanged > 0 && len(changed) != wantChanged {
					b.Fatalf("changed %v, err %v", changed, err)
				}
			}
			// The process's CPU time per pass: on a loaded machine the wall clock (ns/op) counts
			// the time other processes ran too.
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
