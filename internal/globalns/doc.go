// Package globalns compiles a GlobalNamespace into the ClusterWorks that carry its namespace to
// each selected member, and folds those Works' status back into the GlobalNamespace's status.
// It never talks to a member: the work engine does.
package globalns
