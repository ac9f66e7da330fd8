package membercache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// value is what the test's PerMember keeps per member.
type value struct {
	member *Member
	ctx    context.Context
	// visible: Run found the value through Get.
	visible bool
}

func TestPerMemberFollowsTheConnections(t *testing.T) {
	f, other := newFakeMember(t), newFakeMember(t)
	var made atomic.Int32
	gone := make(chan string, 10)
	var p *PerMember[*value]
	p = NewPerMember(PerMemberFuncs[*value]{
		New: func(ctx context.Context, m *Member) *value {
			made.Add(1)
			return &value{member: m, ctx: ctx}
		},
		Run: func(_ context.Context, v *value) {
			got, ok := p.Get(v.member.Name)
			v.visible = ok && got == v
		},
		Gone: func(name string) { gone <- name },
	})
	c := New()
	c.Subscribe(p)
	defer c.Stop()
	ended := func(v *value) bool {
		select {
		case <-v.ctx.Done():
			return true
		default:
			return false
		}
	}
	goneNotice := func(want string) {
		t.Helper()
		select {
		case got := <-gone:
			if got != want {
				t.Fatalf("Gone(%s), want Gone(%s)", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no Gone(%s)", want)
		}
	}

	if _, err := c.Ensure("east", f.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	first, ok := p.Get("east")
	if !ok || first.member != c.Member("east") || !first.visible || ended(first) {
		t.Fatalf("after connecting: %+v, %v", first, ok)
	}

	// New credentials: the old value ends before the new one is made on the new clients.
	if _, err := c.Ensure("east", other.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	if !ended(first) {
		t.Fatal("the value of the replaced connection still runs")
	}
	goneNotice("east")
	second, ok := p.Get("east")
	if !ok || second == first || second.member != c.Member("east") || ended(second) {
		t.Fatalf("after new credentials: %+v, %v", second, ok)
	}

	// Disconnected: ended and forgotten.
	c.Remove("east")
	if !ended(second) {
		t.Fatal("the value of a removed member still runs")
	}
	if _, ok := p.Get("east"); ok {
		t.Fatal("a removed member is still kept")
	}
	goneNotice("east")

	if _, err := c.Ensure("west", f.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ensure("north", f.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	if got := p.Names(); len(got) != 2 || got[0] != "north" || got[1] != "west" {
		t.Fatalf("names %v", got)
	}
	west, _ := p.Get("west")

	// Stopped: every value ends, nothing new is made, nobody is told of what goes after.
	p.Stop()
	if !ended(west) {
		t.Fatal("a value still runs after Stop")
	}
	if _, ok := p.Get("west"); ok {
		t.Fatal("a value is kept after Stop")
	}
	before := made.Load()
	if _, err := c.Ensure("south", f.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	c.Remove("west")
	if made.Load() != before {
		t.Fatal("a value was made after Stop")
	}
	select {
	case n := <-gone:
		t.Fatalf("Gone(%s) after Stop", n)
	default:
	}
}

// Gone runs on its own goroutine: a slow one holds up neither the member cache nor other
// members; Stop waits for it.
func TestPerMemberGoneDoesNotHoldUpTheCache(t *testing.T) {
	f := newFakeMember(t)
	release := make(chan struct{})
	var calls atomic.Int32
	p := NewPerMember(PerMemberFuncs[int]{
		New:  func(context.Context, *Member) int { return 1 },
		Gone: func(string) { calls.Add(1); <-release },
	})
	c := New()
	c.Subscribe(p)
	defer c.Stop()
	for _, n := range []string{"a", "b"} {
		if _, err := c.Ensure(n, f.kubeconfig(), fast); err != nil {
			t.Fatal(err)
		}
	}
	removed := make(chan struct{})
	go func() {
		c.Remove("a")
		c.Remove("b")
		close(removed)
	}()
	select {
	case <-removed:
	case <-time.After(10 * time.Second):
		t.Fatal("a blocked Gone holds up the member cache")
	}
	stopped := make(chan struct{})
	go func() { p.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while Gone notices were under way")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return once the Gone notices ended")
	}
	if calls.Load() != 2 {
		t.Fatalf("%d Gone notices, want 2", calls.Load())
	}
}

func TestRunInformersTellsOnceSynced(t *testing.T) {
	lw := &cache.ListWatch{
		ListFunc: func(metav1.ListOptions) (runtime.Object, error) {
			return &corev1.NodeList{Items: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: "1"}}}}, nil
		},
		WatchFunc: func(metav1.ListOptions) (watch.Interface, error) { return watch.NewFake(), nil },
	}
	a := cache.NewSharedIndexInformer(listThenWatch{lw}, &corev1.Node{}, 0, cache.Indexers{})
	b := cache.NewSharedIndexInformer(listThenWatch{lw}, &corev1.Node{}, 0, cache.Indexers{})
	ctx, cancel := context.WithCancel(context.Background())
	synced := make(chan struct{}, 2)
	RunInformers(ctx, func() { synced <- struct{}{} }, a, b)
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("not told that the informers synced")
	}
	if !a.HasSynced() || !b.HasSynced() || len(a.GetStore().List()) != 1 {
		t.Fatal("told before every informer synced")
	}
	cancel()
	waitFor(t, 10*time.Second, "the informers stop when their context ends", func() bool { return a.IsStopped() && b.IsStopped() })
	if len(synced) != 0 {
		t.Fatal("told more than once")
	}
}

// listThenWatch tells the reflector to list, then watch, as it does with an apiserver that does
// not stream lists: the fake watcher sends no initial events.
type listThenWatch struct{ *cache.ListWatch }

func (listThenWatch) IsWatchListSemanticsUnSupported() bool { return true }
