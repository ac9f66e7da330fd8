package mcs

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func exp(cluster string, age time.Duration, labels map[string]string, svc *corev1.Service, ips ...string) Export {
	se := &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", CreationTimestamp: metav1.NewTime(t0.Add(-age))},
		Spec: mcsv1beta1.ServiceExportSpec{ExportedLabels: labels}}
	var eps []discoveryv1.Endpoint
	for i, ip := range ips {
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(i%2 == 0)}})
	}
	slice := &discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps,
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(corev1.ProtocolTCP)}}}
	return Export{Cluster: cluster, Export: se, Service: svc, Slices: []*discoveryv1.EndpointSlice{slice}}
}

func svc(ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.0.0.1", Ports: ports}}
}

func p(name string, n int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: n, Protocol: corev1.ProtocolTCP}
}

// Ports that differ without clashing: the union is imported, and per the Multi-Cluster Services
// API ("the ports are not identical in all the constituent Services") every export says
// Conflict=True with PortConflict.
func TestResolveAsymmetricPortSets(t *testing.T) {
	udp := func(name string, n int32, proto corev1.Protocol) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Port: n, Protocol: proto}
	}
	imp, v := Resolve([]Export{
		exp("b", time.Minute, nil, svc(udp("tcp", 42, corev1.ProtocolTCP), udp("sctp", 142, corev1.ProtocolSCTP)), "10.2.0.1"),
		exp("a", time.Hour, nil, svc(udp("tcp", 42, corev1.ProtocolTCP), udp("udp", 42, corev1.ProtocolUDP)), "10.1.0.1"),
	})
	if imp == nil {
		t.Fatal("no import")
	}
	var got []string
	for _, p := range imp.Ports {
		got = append(got, fmt.Sprintf("%s:%d/%s", p.Name, p.Port, p.Protocol))
	}
	if strings.Join(got, ",") != "tcp:42/TCP,udp:42/UDP,sctp:142/SCTP" {
		t.Errorf("imported ports %v, want the union, oldest export's first", got)
	}
	for _, c := range []string{"a", "b"} {
		if v[c].ConflictReason != mcsv1beta1.ServiceExportReasonPortConflict || !strings.Contains(v[c].ConflictMessage, "sctp 142/SCTP") {
			t.Errorf("%s: verdict %+v, want PortConflict naming the ports", c, v[c])
		}
	}
	// Identical port sets, listed in another order: no conflict.
	_, v = Resolve([]Export{
		exp("a", time.Hour, nil, svc(p("http", 80), p("metrics", 9100)), "10.1.0.1"),
		exp("b", time.Minute, nil, svc(p("metrics", 9100), p("http", 80)), "10.2.0.1"),
	})
	if v["a"].ConflictReason != "" || v["b"].ConflictReason != "" {
		t.Errorf("identical ports in another order: %+v", v)
	}
}

func TestResolveMergesPortsAndOrdersOldestFirst(t *testing.T) {
	imp, v := Resolve([]Export{
		exp("b", time.Minute, nil, svc(p("http", 80), p("metrics", 9100)), "10.2.0.1"),
		exp("a", time.Hour, nil, svc(p("http", 80)), "10.1.0.1", "10.1.0.2", "10.1.0.3"),
	})
	if imp == nil {
		t.Fatal("no import")
	}
	if got := strings.Join(imp.Sources, ","); got != "a,b" {
		t.Errorf("sources %s, want a,b (oldest first)", got)
	}
	if len(imp.Ports) != 2 || imp.Ports[0].Name != "http" || imp.Ports[1].Name != "metrics" {
		t.Errorf("ports %+v", imp.Ports)
	}
	for c, verdict := range v { // the port sets differ: the union is imported, with a PortConflict
		if verdict.ConflictReason != mcsv1beta1.ServiceExportReasonPortConflict || verdict.InvalidReason != "" {
			t.Errorf("%s: %+v", c, verdict)
		}
	}
	// Only ready endpoints: a has 10.1.0.1 and 10.1.0.3 ready, b has 10.2.0.1.
	if imp.ReadyCount() != 3 || len(imp.Endpoints["a"][0].Endpoints) != 2 {
		t.Errorf("ready endpoints %+v", imp.Endpoints)
	}
}

func TestResolveConflictsOldestWins(t *testing.T) {
	headless := svc(p("http", 80))
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	cases := []struct {
		name   string
		newer  Export
		reason mcsv1beta1.ServiceExportConditionReason
	}{
		{"same port name, other number", exp("new", time.Minute, nil, svc(p("http", 8080))), mcsv1beta1.ServiceExportReasonPortConflict},
		{"same number, other name", exp("new", time.Minute, nil, svc(p("web", 80))), mcsv1beta1.ServiceExportReasonPortConflict},
		{"headless vs ClusterIP", exp("new", time.Minute, nil, headless), mcsv1beta1.ServiceExportReasonTypeConflict},
		{"exported labels", exp("new", time.Minute, map[string]string{"x": "2"}, svc(p("http", 80))), mcsv1beta1.ServiceExportReasonLabelsConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := exp("old", time.Hour, map[string]string{"x": "1"}, svc(p("http", 80)))
			if tc.reason != mcsv1beta1.ServiceExportReasonLabelsConflict {
				tc.newer.Export.Spec.ExportedLabels = map[string]string{"x": "1"}
			}
			imp, v := Resolve([]Export{tc.newer, old})
			for _, c := range []string{"old", "new"} {
				if v[c].ConflictReason != tc.reason || !strings.Contains(v[c].ConflictMessage, "oldest export (old) wins") {
					t.Errorf("%s: %+v, want %s", c, v[c], tc.reason)
				}
			}
			if imp.Type != mcsv1beta1.ClusterSetIP || imp.Labels["x"] != "1" || imp.Ports[0].Port != 80 || imp.Ports[0].Name != "http" {
				t.Errorf("the oldest export should win: %+v", imp)
			}
		})
	}
}

func TestResolveInvalidExports(t *testing.T) {
	ext := svc()
	ext.Spec.Type = corev1.ServiceTypeExternalName
	imp, v := Resolve([]Export{exp("a", time.Hour, nil, nil), exp("b", time.Hour, nil, ext)})
	if imp != nil {
		t.Errorf("invalid exports imported: %+v", imp)
	}
	if v["a"].InvalidReason != mcsv1beta1.ServiceExportReasonNoService || v["b"].InvalidReason != mcsv1beta1.ServiceExportReasonInvalidServiceType {
		t.Errorf("verdicts %+v", v)
	}
}

func TestDesired(t *testing.T) {
	var ips []string
	for i := range 250 {
		ips = append(ips, fmt.Sprintf("10.1.%d.%d", i/100, i%100))
	}
	e := exp("a", time.Hour, map[string]string{"tier": "front"}, svc(p("http", 80)), ips...)
	for i := range e.Slices[0].Endpoints {
		e.Slices[0].Endpoints[i].Conditions.Ready = nil // unknown counts as ready
	}
	imp, _ := Resolve([]Export{e})
	objs := Desired("shop", "web", imp, []string{"10.96.0.10"})
	if len(objs) != 5 { // ServiceImport, Service, 3 slices (100+100+50)
		t.Fatalf("%d objects", len(objs))
	}
	si := objs[0].(*mcsv1beta1.ServiceImport)
	if si.Name != "web" || si.Spec.IPs[0] != "10.96.0.10" || si.Labels["tier"] != "front" || si.Spec.Type != mcsv1beta1.ClusterSetIP {
		t.Errorf("ServiceImport %+v", si)
	}
	derived := objs[1].(*corev1.Service)
	if derived.Name != "meridian-web" || derived.Spec.Selector != nil || derived.Spec.Ports[0].Port != 80 || derived.Spec.Ports[0].TargetPort != intstr.FromInt32(80) {
		t.Errorf("derived Service %+v", derived)
	}
	// kubectl create service clusterip c --tcp=80:8080 names its port 80-8080, no valid target
	// port name: the derived Service's targetPort is the port number.
	imp, _ = Resolve([]Export{exp("a", time.Hour, nil, svc(corev1.ServicePort{Name: "80-8080", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}))})
	derived = Desired("shop", "c", imp, nil)[1].(*corev1.Service)
	if tp := derived.Spec.Ports[0].TargetPort; tp != intstr.FromInt32(80) || derived.Spec.Ports[0].Name != "80-8080" {
		t.Errorf("derived Service of a kubectl-made Service: port %+v", derived.Spec.Ports[0])
	}
	names := map[string]int{}
	for _, o := range objs[2:] {
		s := o.(*discoveryv1.EndpointSlice)
		names[s.Name] = len(s.Endpoints)
		if s.Labels[discoveryv1.LabelServiceName] != "meridian-web" || s.Labels[mcsv1beta1.LabelSourceCluster] != "a" ||
			s.Labels[mcsv1beta1.LabelServiceName] != "web" || s.Labels[discoveryv1.LabelManagedBy] != EndpointSliceManager {
			t.Errorf("slice labels %v", s.Labels)
		}
	}
	if names["meridian-web-ipv4-a"] != 100 || names["meridian-web-ipv4p1-a"] != 100 || names["meridian-web-ipv4p2-a"] != 50 {
		t.Errorf("slices %v", names)
	}
	if n := DerivedServiceName(strings.Repeat("x", 63)); len(n) > 63 || !strings.HasPrefix(n, "meridian-x") {
		t.Errorf("long derived name %q", n)
	}
}

// The colliding pairs of issue 16: namespace a-b with service c and namespace a with service b-c
// (and slices of service a-b from cluster c against service a from cluster b-c) get distinct names.
func TestNamesOfDifferentSourcesDiffer(t *testing.T) {
	if a, b := ImportWorkName("a-b", "c"), ImportWorkName("a", "b-c"); a == b {
		t.Errorf("import Works share the name %q", a)
	}
	if got := ImportWorkName("shop", "web"); got != "mcs-shop-web" {
		t.Errorf("ImportWorkName(shop, web) = %q: an unambiguous name changed", got)
	}
	if a, b := sliceName("a-b", "c", discoveryv1.AddressTypeIPv4, 0), sliceName("a", "b-c", discoveryv1.AddressTypeIPv4, 0); a == b {
		t.Errorf("slices share the name %q", a)
	}
	long := strings.Repeat("m", 253) // a MemberCluster name may be a 253-character subdomain
	for _, n := range []string{
		ImportWorkName(strings.Repeat("n", 63), strings.Repeat("s", 63)),
		sliceName(strings.Repeat("s", 63), long, discoveryv1.AddressTypeIPv6, 12),
	} {
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			t.Errorf("%q: %v", n, errs)
		}
	}
	if a, b := sliceName("web", long, discoveryv1.AddressTypeIPv4, 0), sliceName("web", long[:252]+"x", discoveryv1.AddressTypeIPv4, 0); a == b {
		t.Errorf("slices of two long clusters share the name %q", a)
	}
}
