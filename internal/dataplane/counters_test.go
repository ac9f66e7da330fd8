package dataplane

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// countersModel has two pods; a's egress has a tiered rule with two ports (two nftables rules,
// one counter), a NetworkPolicy stage and a baseline rule.
func countersModel() *Model {
	peers := MustAddrSet([]string{"198.18.200.0/24"})
	return &Model{Pods: []Pod{
		{Name: "shop/a", IP: netip.MustParseAddr("198.18.100.1"), Egress: Direction{
			Tiered:        []Rule{{Name: "t/p/egress/0", Action: Drop, Peers: &peers, Ports: []Port{{Protocol: TCP, Port: 80}, {Protocol: TCP, Port: 443}}}},
			NetworkPolicy: NetworkPolicyStage{Selected: true, Allow: []AllowRule{{Name: "networkpolicy/shop/np/egress/0", Peers: &peers}}},
			Baseline:      []Rule{{Name: "baseline/b/egress/0", Action: Reject, Ports: []Port{{Protocol: UDP, Port: 53}}}},
		}},
		{Name: "shop/b", IP: netip.MustParseAddr("198.18.100.2"), Ingress: Direction{
			Tiered: []Rule{{Name: "t/q/ingress/0", Action: Allow}},
		}},
	}}
}

// onNode is a Programmer of a node namespace of its own.
func onNode(t *testing.T) *Programmer {
	t.Helper()
	requirePackets(t)
	topo := newTopology(t, 1)
	p, err := New(Options{NetNSFd: int(topo.Nodes[0].NS)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestPodCountersReadOnlyThatPodWithoutWaitingForChanges(t *testing.T) {
	p := onNode(t)
	if _, err := p.Start(countersModel()); err != nil {
		t.Fatal(err)
	}

	got, err := p.PodCounters("shop/a")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, rc := range got {
		keys = append(keys, rc.Key()+" "+string(rc.Action))
	}
	// Evaluation order, one entry per model rule (the two ports' rules summed), egress first.
	want := []string{
		"egress tiered 0 shop/a Drop", "egress tiered -1 shop/a Pass",
		"egress networkpolicy 0 shop/a Allow", "egress networkpolicy -1 shop/a Drop",
		"egress baseline 0 shop/a Reject", "egress default -1 shop/a Allow",
		"ingress tiered -1 shop/a Pass", "ingress networkpolicy -2 shop/a ", "ingress default -1 shop/a Allow",
	}
	if !slices.Equal(keys, want) {
		t.Errorf("PodCounters(shop/a) =\n  %q\nwant\n  %q", keys, want)
	}
	// The same rules as the whole table's, for that pod.
	all, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	all = slices.DeleteFunc(all, func(rc RuleCounter) bool { return rc.Pod != "shop/a" })
	if len(all) != len(got) {
		t.Errorf("the whole table holds %d rules of shop/a, PodCounters read %d", len(all), len(got))
	}
	for _, rc := range all {
		if !slices.Contains(got, rc) {
			t.Errorf("PodCounters misses %+v", rc)
		}
	}

	if rcs, err := p.PodCounters("shop/gone"); err != nil || len(rcs) != 0 {
		t.Errorf("PodCounters of a pod the table does not hold = %v, %v; want nothing, no error", rcs, err)
	}

	// A read does not wait for a change: hold the Programmer's lock as a long Apply would.
	p.mu.Lock()
	done := make(chan error, 1)
	go func() {
		_, err := p.PodCounters("shop/b")
		if err == nil {
			_, err = p.RuleCounters()
		}
		done <- err
	}()
	select {
	case err := <-done:
		p.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		p.mu.Unlock()
		t.Fatal("reading counters waited for the lock of the table's changes")
	}
}

func TestDecideNamesTheProgrammedRule(t *testing.T) {
	p := onNode(t)
	if _, ok := p.Decide("shop/a", false, netip.MustParseAddr("198.18.200.1"), TCP, 80); ok {
		t.Error("Decide answered before the table was built")
	}
	m := countersModel()
	if _, err := p.Start(m); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peer  string
		proto Protocol
		port  uint16
		want  Decision
	}{
		{"198.18.200.1", TCP, 443, Decision{Verdict: VerdictDrop, Stage: "tiered", Index: 0, Name: "t/p/egress/0"}},
		{"198.18.200.1", UDP, 53, Decision{Verdict: VerdictAllow, Stage: "networkpolicy", Index: 0, Name: "networkpolicy/shop/np/egress/0"}},
		{"198.18.201.1", UDP, 53, Decision{Verdict: VerdictDrop, Stage: "networkpolicy", Index: -1}},
	} {
		got, ok := p.Decide("shop/a", false, netip.MustParseAddr(tc.peer), tc.proto, tc.port)
		if !ok || got != tc.want {
			t.Errorf("Decide(shop/a egress to %s %s/%d) = %+v, %v; want %+v", tc.peer, tc.proto, tc.port, got, ok, tc.want)
		}
	}
	// Once shop/a has no NetworkPolicy, the baseline and the default decide.
	m.Pods[0].Egress.NetworkPolicy = NetworkPolicyStage{}
	if _, err := p.Apply(m); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Decide("shop/a", false, netip.MustParseAddr("198.18.201.1"), UDP, 53); got.Stage != "baseline" || got.Index != 0 {
		t.Errorf("after the change Decide = %+v, want baseline rule 0", got)
	}
	if got, _ := p.Decide("shop/a", false, netip.MustParseAddr("198.18.201.1"), TCP, 80); got.Stage != "default" || got.Index != -1 {
		t.Errorf("after the change Decide = %+v, want the default", got)
	}
	if _, ok := p.Decide("shop/gone", true, netip.MustParseAddr("198.18.201.1"), TCP, 80); ok {
		t.Error("Decide answered for a pod the table does not hold")
	}
}

// A take-over cannot know what the old table holds: it refills every set it keeps, also to
// empty, and rewrites every chain it keeps, even where the new run's content looks like what a
// table built from scratch would hold.
func TestTakeOverRewritesWhatItKeeps(t *testing.T) {
	requirePackets(t)
	topo := newTopology(t, 1)
	ns := int(topo.Nodes[0].NS)
	old := MustAddrSet([]string{"198.18.200.0/24"})
	none := MustAddrSet(nil)
	model := func(peers *AddrSet, a Action) *Model {
		return &Model{Pods: []Pod{{Name: "shop/a", IP: netip.MustParseAddr("198.18.100.1"), Egress: Direction{
			Tiered: []Rule{{Name: "t/p/egress/0", Action: a, Peers: peers}}}}}}
	}
	first, err := New(Options{NetNSFd: ns})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Start(model(&old, Drop)); err != nil {
		t.Fatal(err)
	}
	_ = first.Close()

	p, err := New(Options{NetNSFd: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	st, err := p.Start(model(&none, Allow))
	if err != nil {
		t.Fatal(err)
	}
	if st.ChainsDeleted != 0 || st.SetsDeleted != 0 {
		t.Errorf("the take-over deleted %d chains and %d sets; the model keeps them all", st.ChainsDeleted, st.SetsDeleted)
	}
	set, err := p.reader.GetSetByName(p.table, "e-r"+podID("t/p/egress/0"))
	if err != nil {
		t.Fatal(err)
	}
	elems, err := p.reader.GetSetElements(set)
	if err != nil {
		t.Fatal(err)
	}
	if len(elems) != 0 {
		t.Errorf("the rule's set still holds %d elements of the old run; the new model's peers are empty", len(elems))
	}
	rcs, err := p.PodCounters("shop/a")
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(rcs, func(rc RuleCounter) bool { return rc.Stage == "tiered" && rc.Index == 0 }); i < 0 || rcs[i].Action != Allow {
		t.Errorf("the kept chain's rule is %+v; the new model says Allow", rcs)
	}
}
