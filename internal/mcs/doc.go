// Package mcs implements cross-cluster service discovery with the Multi-Cluster Services API
// (KEP-1645, sigs.k8s.io/mcs-api v1beta1). The members of the hub form one cluster set with
// namespace sameness. Inventory watches what each member exports (ServiceExports, Services,
// EndpointSlices, Namespaces), trimmed to the fields used; Resolve merges the exports of one
// service across the set (oldest export wins conflicts); Desired compiles, for each importing
// member, the ServiceImport, the derived selector-less Service and the EndpointSlices that carry
// the sources' ready endpoints. Writes to members go through the work engine.
package mcs
