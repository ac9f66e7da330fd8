package agentstatus

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
)

// The transforms below are the one owner of these resources' shape in the aggregator's
// informers: each keeps only what Summarize reads. Informers may hand an object in twice, so
// each is idempotent.

// TrimNode keeps a node's name.
func TrimNode(o any) (any, error) {
	n, ok := o.(*corev1.Node)
	if !ok {
		return o, nil
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion}}, nil
}

// TrimLease keeps a Lease's holder, duration and renew time.
func TrimLease(o any) (any, error) {
	l, ok := o.(*coordinationv1.Lease)
	if !ok {
		return o, nil
	}
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: l.Name, Namespace: l.Namespace, UID: l.UID, ResourceVersion: l.ResourceVersion},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: l.Spec.HolderIdentity, LeaseDurationSeconds: l.Spec.LeaseDurationSeconds, RenewTime: l.Spec.RenewTime},
	}, nil
}

// TrimCRD keeps a CustomResourceDefinition's name (<plural>.<group> says which kind it serves)
// and whether it is established (served), as a top-level "established".
func TrimCRD(o any) (any, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return o, nil
	}
	if _, trimmed := u.Object["established"]; trimmed {
		return u, nil
	}
	established := false
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			established = true
		}
	}
	out := &unstructured.Unstructured{Object: map[string]any{"established": established}}
	out.SetAPIVersion(u.GetAPIVersion())
	out.SetKind(u.GetKind())
	out.SetName(u.GetName())
	out.SetUID(u.GetUID())
	out.SetResourceVersion(u.GetResourceVersion())
	return out, nil
}

// TrimNodeAgentInfo turns a NodeAgentInfo into a typed one holding version, config hashes and the
// ConfigValid and Healthy conditions.
func TrimNodeAgentInfo(o any) (any, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return o, nil
	}
	in := &memberv1alpha1.NodeAgentInfo{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, in); err != nil {
		return nil, err
	}
	out := &memberv1alpha1.NodeAgentInfo{
		ObjectMeta: metav1.ObjectMeta{Name: in.Name, UID: in.UID, ResourceVersion: in.ResourceVersion},
		Version:    in.Version, ConfigHash: in.ConfigHash, RefusedConfigHash: in.RefusedConfigHash,
	}
	for _, t := range []string{memberv1alpha1.ConfigValidCondition, memberv1alpha1.HealthyCondition} {
		if c := meta.FindStatusCondition(in.Conditions, t); c != nil {
			out.Conditions = append(out.Conditions, metav1.Condition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message})
		}
	}
	return out, nil
}

// antreaInfo is an AntreaAgentInfo or AntreaControllerInfo reduced to version, health and the
// time of its last heartbeat.
type antreaInfo struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	Info AntreaInfo
}

func (a *antreaInfo) DeepCopyObject() runtime.Object {
	c := *a
	a.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}

// trimAntrea reads Antrea's documented fields (crd.antrea.io/v1beta1): version, and the
// condition of conditionsField of the given type with its status and lastHeartbeatTime.
func trimAntrea(conditionsField, healthyType string) func(any) (any, error) {
	return func(o any) (any, error) {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			return o, nil
		}
		out := &antreaInfo{ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), UID: u.GetUID(), ResourceVersion: u.GetResourceVersion()}}
		out.Info.Version, _, _ = unstructured.NestedString(u.Object, "version")
		conds, _, _ := unstructured.NestedSlice(u.Object, conditionsField)
		for _, c := range conds {
			m, ok := c.(map[string]any)
			if !ok || m["type"] != healthyType {
				continue
			}
			out.Info.Healthy = m["status"] == string(metav1.ConditionTrue)
			if s, ok := m["lastHeartbeatTime"].(string); ok {
				out.Info.Heartbeat, _ = time.Parse(time.RFC3339, s)
			}
		}
		return out, nil
	}
}

// TrimAntreaAgentInfo keeps an AntreaAgentInfo's version and its AgentHealthy condition.
var TrimAntreaAgentInfo = trimAntrea("agentConditions", "AgentHealthy")

// TrimAntreaControllerInfo keeps an AntreaControllerInfo's version and its ControllerHealthy condition.
var TrimAntreaControllerInfo = trimAntrea("controllerConditions", "ControllerHealthy")
