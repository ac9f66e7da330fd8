// Package work is the syncer: the only code that writes to member clusters.
//
// It applies the objects of a ClusterWork with server-side apply under one field manager, labels
// what it owns, prunes what a Work no longer lists, refuses to take over objects it did not create
// (unless the Work adopts them), repairs drift and reads back status fields.
//
// Silence comes from deciding in memory. For every object it owns, a member-side informer
// (label-selected, one per kind) keeps only metadata and two digests computed when the object
// arrives: the projection of the live object onto the fields the Work sets, and the values of the
// requested status fields. An object whose projection equals the one recorded after the syncer's
// own last apply is in sync and costs no request; a watch event that changes it (an edit or a
// deletion out of band) queues the Work again, so drift is repaired from events, not by timers.
//
// Each member has its own queue and workers (Engine), so a member that hangs costs only its own.
package work
