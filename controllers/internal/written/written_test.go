package written

import "testing"

func TestSwapReturnsTheLastWrittenElseTheFallback(t *testing.T) {
	var w Statuses[string]
	if got := w.Swap("a", "u1", "read", "one"); got != "read" {
		t.Fatalf("first Swap = %q, want the fallback", got)
	}
	// A stale read does not matter once something was written.
	if got := w.Swap("a", "u1", "stale", "two"); got != "one" {
		t.Fatalf("second Swap = %q, want the last written", got)
	}
	if got := w.Swap("b", "u2", "other", "x"); got != "other" {
		t.Fatalf("another name = %q, want its fallback", got)
	}
	if got := w.Swap("a", "u3", "recreated", "four"); got != "recreated" {
		t.Fatalf("another object of the same name = %q, want its fallback", got)
	}
	w.Forget("a")
	if got := w.Swap("a", "u1", "read again", "three"); got != "read again" {
		t.Fatalf("after Forget = %q, want the fallback", got)
	}
}
