// Package conformance checks Meridian's objects, as the controllers write them (the testdata under
// config/argocd, kept true by test/integration/gitops), with the tools GitOps users run: Argo CD's
// Lua health checks in the interpreter Argo CD embeds, kstatus, and Flux's condition checks.
//
// It is its own module because Flux's runtime package requires newer Kubernetes libraries than
// Meridian builds with; nothing here is linked into Meridian.
package conformance
