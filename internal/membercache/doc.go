// Package membercache is the one owner of every connection from the hub to a member cluster, in
// the spirit of Cluster API's controllers/clustercache.
//
// For each member the Cache alone builds, replaces and stops the clients (REST config, HTTP
// clients, dynamic, metadata and typed clients, RESTMapper, shared informer factories, one rate
// limit), probes the member on its own goroutine and decides when it is unreachable: only after
// FailureThreshold probes in a row failed, so that one blip does not flip every Work's status.
//
// Everything else that talks to members (the work engine, service discovery, later the policy
// inventory and the agent aggregator) is a Subscriber: it is told, in order per member, when a
// member is connected (with its clients), when its health changes, and when it is disconnected
// (the MemberCluster was deleted, its kubeconfig replaced or unusable, or the Cache stopped). A
// change of credentials is a Disconnected followed by a Connected with new clients; nothing keeps
// the old ones. See docs/member-cache.md.
package membercache
