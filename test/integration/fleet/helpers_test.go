package fleet_test

import "context"

// ctx is the context of a spec's requests to the test bed; they are bounded by the specs' own
// Eventually timeouts and the local apiservers.
func ctx() context.Context { return context.Background() }
