package mcs

import (
	"fmt"
	"maps"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/meridian-io/meridian/internal/names"
)

// EndpointSliceManager is the endpointslice.kubernetes.io/managed-by value of imported slices.
const EndpointSliceManager = "service-discovery.meridian.io"

// DerivedServiceName is the name of the selector-less Service whose ClusterIP is the VIP of an
// imported service in each importing member: meridian-<service>, shortened with a hash when the
// result would not fit a DNS label.
func DerivedServiceName(service string) string {
	return names.Join(names.DNSLabel, "meridian-", service)
}

// Export is one member's export of a service.
type Export struct {
	Cluster string
	// Export is the member's ServiceExport; nil when the namespace exports every Service (mode All).
	Export *mcsv1beta1.ServiceExport
	// Service is the exported Service (trimmed); nil when it does not exist.
	Service *corev1.Service
	// Slices are the Service's EndpointSlices in the member, made by the member's own controllers.
	Slices []*discoveryv1.EndpointSlice
}

// since is when the export began: the ServiceExport's creation, or the Service's for mode All.
func (e *Export) since() metav1.Time {
	if e.Export != nil {
		return e.Export.CreationTimestamp
	}
	if e.Service != nil {
		return e.Service.CreationTimestamp
	}
	return metav1.Time{}
}

// Import is the merged view of one service over its valid exports.
type Import struct {
	Type                  mcsv1beta1.ServiceImportType
	Ports                 []mcsv1beta1.ServicePort
	SessionAffinity       corev1.ServiceAffinity
	SessionAffinityConfig *corev1.SessionAffinityConfig
	InternalTrafficPolicy *corev1.ServiceInternalTrafficPolicy
	TrafficDistribution   *string
	IPFamilies            []corev1.IPFamily
	Labels, Annotations   map[string]string
	// Sources are the valid exporters, oldest export first (the first one wins conflicts).
	Sources []string
	// Endpoints are the ready endpoints by source cluster.
	Endpoints map[string][]Endpoints
}

// Endpoints are one source's ready endpoints of one address type, and the ports they serve.
type Endpoints struct {
	AddressType discoveryv1.AddressType
	Ports       []discoveryv1.EndpointPort
	Endpoints   []discoveryv1.Endpoint
}

// Verdict is what an export's ServiceExport should say.
type Verdict struct {
	// Valid is nil when the export is valid, else the reason and message of Valid=False.
	InvalidReason  mcsv1beta1.ServiceExportConditionReason
	InvalidMessage string
	// ConflictReason and ConflictMessage are set when the exports disagree (on every exporter).
	ConflictReason  mcsv1beta1.ServiceExportConditionReason
	ConflictMessage string
}

// Resolve merges the exports of one service. It returns the import (nil when no export is valid)
// and a verdict per exporting cluster.
func Resolve(exports []Export) (*Import, map[string]Verdict) {
	verdicts := map[string]Verdict{}
	var valid []*Export
	for i := range exports {
		e := &exports[i]
		switch {
		case e.Service == nil:
			verdicts[e.Cluster] = Verdict{InvalidReason: mcsv1beta1.ServiceExportReasonNoService,
				InvalidMessage: "No Service of this name exists in the namespace: nothing is exported until one does."}
		case e.Service.Spec.Type == corev1.ServiceTypeExternalName:
			verdicts[e.Cluster] = Verdict{InvalidReason: mcsv1beta1.ServiceExportReasonInvalidServiceType,
				InvalidMessage: "ExternalName Services cannot be exported (the Multi-Cluster Services API exports ClusterIP and headless Services)."}
		default:
			verdicts[e.Cluster] = Verdict{}
			valid = append(valid, e)
		}
	}
	if len(valid) == 0 {
		return nil, verdicts
	}
	sort.SliceStable(valid, func(a, b int) bool {
		ta, tb := valid[a].since(), valid[b].since()
		if !ta.Equal(&tb) {
			return ta.Before(&tb)
		}
		return valid[a].Cluster < valid[b].Cluster
	})
	winner := valid[0]
	imp := &Import{
		Type:                  importType(winner.Service),
		SessionAffinity:       winner.Service.Spec.SessionAffinity,
		SessionAffinityConfig: winner.Service.Spec.SessionAffinityConfig,
		InternalTrafficPolicy: winner.Service.Spec.InternalTrafficPolicy,
		TrafficDistribution:   winner.Service.Spec.TrafficDistribution,
		IPFamilies:            winner.Service.Spec.IPFamilies,
		Labels:                exportedLabels(winner),
		Annotations:           exportedAnnotations(winner),
		Endpoints:             map[string][]Endpoints{},
	}
	var conflicts []string
	reason := mcsv1beta1.ServiceExportConditionReason("")
	conflict := func(r mcsv1beta1.ServiceExportConditionReason, msg string) {
		if reason == "" {
			reason = r
		}
		conflicts = append(conflicts, msg)
	}
	ports := map[string]mcsv1beta1.ServicePort{} // by name
	byNumber := map[string]string{}              // "port/protocol" -> name
	var order []string
	for _, e := range valid {
		imp.Sources = append(imp.Sources, e.Cluster)
		imp.Endpoints[e.Cluster] = readyEndpoints(e.Slices)
		if e == winner {
			for _, p := range servicePorts(e.Service) {
				ports[p.Name] = p
				byNumber[portNumber(p)] = p.Name
				order = append(order, p.Name)
			}
			continue
		}
		// The Multi-Cluster Services API calls it a PortConflict when "the ports are not
		// identical in all the constituent Services": the union is imported all the same.
		if a, b := portSet(servicePorts(winner.Service)), portSet(servicePorts(e.Service)); a != b {
			conflict(mcsv1beta1.ServiceExportReasonPortConflict, fmt.Sprintf("the ports are %s in %s but %s in %s (the union is imported)", a, winner.Cluster, b, e.Cluster))
		}
		for _, p := range servicePorts(e.Service) {
			have, named := ports[p.Name]
			other, numbered := byNumber[portNumber(p)]
			switch {
			case named && !apiequality.Semantic.DeepEqual(have, p):
				conflict(mcsv1beta1.ServiceExportReasonPortConflict, fmt.Sprintf("port %q is %s in %s but %s in %s", p.Name, describePort(have), winner.Cluster, describePort(p), e.Cluster))
			case !named && numbered:
				conflict(mcsv1beta1.ServiceExportReasonPortConflict, fmt.Sprintf("port %s is named %q in %s but %q in %s", portNumber(p), other, winner.Cluster, p.Name, e.Cluster))
			case !named:
				ports[p.Name] = p
				byNumber[portNumber(p)] = p.Name
				order = append(order, p.Name)
			}
		}
		if t := importType(e.Service); t != imp.Type {
			conflict(mcsv1beta1.ServiceExportReasonTypeConflict, fmt.Sprintf("the Service is %s in %s but %s in %s", imp.Type, winner.Cluster, t, e.Cluster))
		}
		if e.Service.Spec.SessionAffinity != imp.SessionAffinity {
			conflict(mcsv1beta1.ServiceExportReasonSessionAffinityConflict, fmt.Sprintf("sessionAffinity is %q in %s but %q in %s", imp.SessionAffinity, winner.Cluster, e.Service.Spec.SessionAffinity, e.Cluster))
		} else if !apiequality.Semantic.DeepEqual(e.Service.Spec.SessionAffinityConfig, imp.SessionAffinityConfig) {
			conflict(mcsv1beta1.ServiceExportReasonSessionAffinityConfigConflict, fmt.Sprintf("sessionAffinityConfig differs between %s and %s", winner.Cluster, e.Cluster))
		}
		if !maps.Equal(exportedLabels(e), imp.Labels) {
			conflict(mcsv1beta1.ServiceExportReasonLabelsConflict, fmt.Sprintf("exportedLabels differ between %s and %s", winner.Cluster, e.Cluster))
		}
		if !maps.Equal(exportedAnnotations(e), imp.Annotations) {
			conflict(mcsv1beta1.ServiceExportReasonAnnotationsConflict, fmt.Sprintf("exportedAnnotations differ between %s and %s", winner.Cluster, e.Cluster))
		}
		if !apiequality.Semantic.DeepEqual(e.Service.Spec.InternalTrafficPolicy, imp.InternalTrafficPolicy) {
			conflict(mcsv1beta1.ServiceExportReasonInternalTrafficPolicyConflict, fmt.Sprintf("internalTrafficPolicy differs between %s and %s", winner.Cluster, e.Cluster))
		}
		if !apiequality.Semantic.DeepEqual(e.Service.Spec.TrafficDistribution, imp.TrafficDistribution) {
			conflict(mcsv1beta1.ServiceExportReasonTrafficDistributionConflict, fmt.Sprintf("trafficDistribution differs between %s and %s", winner.Cluster, e.Cluster))
		}
		if !apiequality.Semantic.DeepEqual(e.Service.Spec.IPFamilies, imp.IPFamilies) {
			conflict(mcsv1beta1.ServiceExportReasonIPFamilyConflict, fmt.Sprintf("ipFamilies differ between %s and %s", winner.Cluster, e.Cluster))
		}
	}
	for _, name := range order {
		imp.Ports = append(imp.Ports, ports[name])
	}
	if len(conflicts) > 0 {
		msg := fmt.Sprintf("The exports of this service disagree; the oldest export (%s) wins: %s.", winner.Cluster, strings.Join(conflicts, "; "))
		for _, e := range valid {
			verdicts[e.Cluster] = Verdict{ConflictReason: reason, ConflictMessage: msg}
		}
	}
	return imp, verdicts
}

func importType(s *corev1.Service) mcsv1beta1.ServiceImportType {
	if s.Spec.ClusterIP == corev1.ClusterIPNone {
		return mcsv1beta1.Headless
	}
	return mcsv1beta1.ClusterSetIP
}

func servicePorts(s *corev1.Service) []mcsv1beta1.ServicePort {
	out := make([]mcsv1beta1.ServicePort, 0, len(s.Spec.Ports))
	for _, p := range s.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		out = append(out, mcsv1beta1.ServicePort{Name: p.Name, Protocol: proto, AppProtocol: p.AppProtocol, Port: p.Port})
	}
	return out
}

// portSet describes a Service's ports for comparison and messages: sorted, with their names.
func portSet(ports []mcsv1beta1.ServicePort) string {
	out := make([]string, 0, len(ports))
	for _, p := range ports {
		d := describePort(p)
		if p.Name != "" {
			d = p.Name + " " + d
		}
		out = append(out, d)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func portNumber(p mcsv1beta1.ServicePort) string { return fmt.Sprintf("%d/%s", p.Port, p.Protocol) }

func describePort(p mcsv1beta1.ServicePort) string {
	s := portNumber(p)
	if p.AppProtocol != nil {
		s += " (" + *p.AppProtocol + ")"
	}
	return s
}

func exportedLabels(e *Export) map[string]string {
	if e.Export == nil || len(e.Export.Spec.ExportedLabels) == 0 {
		return nil
	}
	return e.Export.Spec.ExportedLabels
}

func exportedAnnotations(e *Export) map[string]string {
	if e.Export == nil || len(e.Export.Spec.ExportedAnnotations) == 0 {
		return nil
	}
	return e.Export.Spec.ExportedAnnotations
}

// readyEndpoints collects the ready endpoints of a source's slices, by address type, sorted so
// that the result does not depend on the order of the slices.
func readyEndpoints(slices []*discoveryv1.EndpointSlice) []Endpoints {
	byType := map[discoveryv1.AddressType]*Endpoints{}
	for _, s := range slices {
		if s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		e := byType[s.AddressType]
		if e == nil {
			e = &Endpoints{AddressType: s.AddressType}
			byType[s.AddressType] = e
		}
		for _, p := range s.Ports {
			if !hasPort(e.Ports, p) {
				e.Ports = append(e.Ports, p)
			}
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			ready := true
			e.Endpoints = append(e.Endpoints, discoveryv1.Endpoint{
				Addresses:  ep.Addresses,
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				Hostname:   ep.Hostname,
				Zone:       ep.Zone,
			})
		}
	}
	out := make([]Endpoints, 0, len(byType))
	for _, e := range byType {
		sort.Slice(e.Endpoints, func(a, b int) bool { return e.Endpoints[a].Addresses[0] < e.Endpoints[b].Addresses[0] })
		sort.Slice(e.Ports, func(a, b int) bool { return portKey(e.Ports[a]) < portKey(e.Ports[b]) })
		out = append(out, *e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].AddressType < out[b].AddressType })
	return out
}

func hasPort(ports []discoveryv1.EndpointPort, p discoveryv1.EndpointPort) bool {
	for _, q := range ports {
		if portKey(q) == portKey(p) {
			return true
		}
	}
	return false
}

func portKey(p discoveryv1.EndpointPort) string {
	name, proto, port := "", "", int32(0)
	if p.Name != nil {
		name = *p.Name
	}
	if p.Protocol != nil {
		proto = string(*p.Protocol)
	}
	if p.Port != nil {
		port = *p.Port
	}
	return fmt.Sprintf("%s/%s/%d", name, proto, port)
}

// ReadyCount counts ready endpoint addresses over all sources.
func (i *Import) ReadyCount() int {
	n := 0
	for _, eps := range i.Endpoints {
		for _, e := range eps {
			n += len(e.Endpoints)
		}
	}
	return n
}
