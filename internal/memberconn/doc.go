// Package memberconn keeps one connection per member cluster and probes it.
//
// Each member has its own prober goroutine, owned by the Registry and stopped when the member is
// removed or the Registry stops, so a member that hangs costs only its own goroutine: a probe is
// bounded by the member's timeout and never holds a controller worker. The reconcilers read the
// latest Health from memory and are told, through the notify function, when it changes.
package memberconn
