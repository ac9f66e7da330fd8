package testbed

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Cut must blackhole a running apiserver (requests time out, they are not refused), and Restore
// must bring it back; Hang likewise with SIGSTOP.
func TestCutAndHangMakeTheAPIServerSilentUntilRestored(t *testing.T) {
	if testing.Short() {
		t.Skip("starts control planes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bed, err := Start(ctx, Options{Members: []string{"member-1"}})
	if bed != nil {
		defer func() { _ = bed.Stop() }()
	}
	if err != nil {
		t.Fatal(err)
	}
	m := bed.Member("member-1")
	cfg := rest.CopyConfig(m.Config)
	cfg.Timeout = 2 * time.Second
	cs := kubernetes.NewForConfigOrDie(cfg)
	answers := func() error {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		return err
	}
	if err := answers(); err != nil {
		t.Fatalf("before: %v", err)
	}
	for _, fault := range []struct {
		name         string
		fail, repair func() error
	}{{"Cut", m.Cut, m.Restore}, {"Hang", m.Hang, m.Resume}} {
		if err := fault.fail(); err != nil {
			t.Fatalf("%s: %v", fault.name, err)
		}
		start := time.Now()
		err := answers()
		if err == nil {
			t.Fatalf("after %s the apiserver still answered", fault.name)
		}
		// Silent, not refused: the request waited for its own timeout.
		if took := time.Since(start); took < cfg.Timeout-200*time.Millisecond {
			t.Fatalf("after %s the request failed after %s (%v), not at its timeout", fault.name, took, err)
		}
		if err := fault.repair(); err != nil {
			t.Fatalf("undo %s: %v", fault.name, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for err = answers(); err != nil; err = answers() {
			if time.Now().After(deadline) {
				t.Fatalf("after undoing %s the apiserver does not answer: %v", fault.name, errors.Unwrap(err))
			}
		}
	}
}
