package mcs

import (
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/internal/names"
)

// maxEndpointsPerSlice keeps imported slices at the size Kubernetes' own controller uses.
const maxEndpointsPerSlice = 100

// ImportWorkName is the ClusterWork that imports namespace/service into a member:
// mcs-<namespace>-<service>, with a hash where that could name another service (see names.Join).
func ImportWorkName(namespace, service string) string {
	return names.Join(names.DNSSubdomain, netv1alpha1.ImportWorkPrefix, namespace, service)
}

// Desired lists the objects one importing member needs for the import: the ServiceImport, the
// derived Service (its ClusterIP is the import's VIP, in vips once the member allocated it) and
// one EndpointSlice per source cluster and address type (more when a source has over 100 endpoints).
func Desired(namespace, service string, imp *Import, vips []string) []runtime.Object {
	derived := DerivedServiceName(service)
	si := &mcsv1beta1.ServiceImport{
		TypeMeta: metav1.TypeMeta{APIVersion: mcsv1beta1.GroupVersion.String(), Kind: "ServiceImport"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: service,
			Labels: imp.Labels, Annotations: imp.Annotations},
		Spec: mcsv1beta1.ServiceImportSpec{
			Type:                  imp.Type,
			Ports:                 imp.Ports,
			SessionAffinity:       imp.SessionAffinity,
			SessionAffinityConfig: imp.SessionAffinityConfig,
			IPFamilies:            imp.IPFamilies,
			InternalTrafficPolicy: imp.InternalTrafficPolicy,
			TrafficDistribution:   imp.TrafficDistribution,
		},
	}
	if imp.Type == mcsv1beta1.ClusterSetIP {
		si.Spec.IPs = vips
	}
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: derived,
			Labels: map[string]string{mcsv1beta1.LabelServiceName: service}},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeClusterIP,
			SessionAffinity:       imp.SessionAffinity,
			SessionAffinityConfig: imp.SessionAffinityConfig,
			InternalTrafficPolicy: imp.InternalTrafficPolicy,
			TrafficDistribution:   imp.TrafficDistribution,
		},
	}
	if imp.Type == mcsv1beta1.Headless {
		svc.Spec.ClusterIP = corev1.ClusterIPNone
	}
	for _, p := range imp.Ports {
		// The derived Service has no selector: its targetPort serves nothing (the imported
		// EndpointSlices carry the ports), so it is the port's number. The port's name would
		// not do: Service port names such as kubectl's "80-8080" are no valid target port names.
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port,
			AppProtocol: p.AppProtocol, TargetPort: intstr.FromInt32(p.Port)})
	}
	out := []runtime.Object{si, svc}

	sources := make([]string, 0, len(imp.Endpoints))
	for c := range imp.Endpoints {
		sources = append(sources, c)
	}
	sort.Strings(sources)
	for _, cluster := range sources {
		for _, eps := range imp.Endpoints[cluster] {
			for chunk := 0; chunk == 0 || chunk*maxEndpointsPerSlice < len(eps.Endpoints); chunk++ {
				end := min((chunk+1)*maxEndpointsPerSlice, len(eps.Endpoints))
				out = append(out, &discoveryv1.EndpointSlice{
					TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
					ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: sliceName(service, cluster, eps.AddressType, chunk),
						Labels: map[string]string{
							mcsv1beta1.LabelServiceName:   service,
							mcsv1beta1.LabelSourceCluster: cluster,
							discoveryv1.LabelServiceName:  derived,
							discoveryv1.LabelManagedBy:    EndpointSliceManager,
						}},
					AddressType: eps.AddressType,
					Endpoints:   eps.Endpoints[chunk*maxEndpointsPerSlice : end],
					Ports:       eps.Ports,
				})
			}
		}
	}
	return out
}

// sliceName names an imported EndpointSlice: meridian-<service>-<family>-<source cluster>, the
// family ipv4 or ipv6, followed by p<n> for the n-th extra slice of a large source; with a hash
// where that could name another slice (see names.Join).
func sliceName(service, cluster string, t discoveryv1.AddressType, chunk int) string {
	family := "ipv4"
	if t == discoveryv1.AddressTypeIPv6 {
		family = "ipv6"
	}
	if chunk > 0 {
		family += fmt.Sprintf("p%d", chunk)
	}
	return names.Join(names.DNSSubdomain, "meridian-", service, family, cluster)
}

// ImportWork is the ClusterWork that carries the import into the member.
func ImportWork(member, namespace, service string, objects []runtime.Object) (*fleetv1alpha1.ClusterWork, error) {
	w := &fleetv1alpha1.ClusterWork{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: fleetv1alpha1.MemberClusterNamespacePrefix + member,
			Name:      ImportWorkName(namespace, service),
			Labels: map[string]string{
				netv1alpha1.ServiceNamespaceLabel: namespace,
				netv1alpha1.ServiceNameLabel:      service,
				fleetv1alpha1.MemberClusterLabel:  member,
			},
			// Set at creation, the syncer need not add it with a write of its own.
			Finalizers: []string{fleetv1alpha1.WorkFinalizer},
		},
		Spec: fleetv1alpha1.ClusterWorkSpec{DeletionPolicy: fleetv1alpha1.DeletionPolicyDelete},
	}
	for _, o := range objects {
		raw, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		w.Spec.Objects = append(w.Spec.Objects, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	return w, nil
}
