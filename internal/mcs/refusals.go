package mcs

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

// Refusals remembers, per service, the MCS status writes that members refused (admission, RBAC
// or schema said no), until a later write of the same object is accepted. The hub's status of
// the service reports them (StatusWritten=False); nothing is retried until the service changes,
// since the member would refuse the same write again.
type Refusals struct {
	mu sync.Mutex
	m  map[ServiceKey]map[refusedObject]string
}

type refusedObject struct{ member, kind string }

// NewRefusals returns an empty Refusals.
func NewRefusals() *Refusals {
	return &Refusals{m: map[ServiceKey]map[refusedObject]string{}}
}

// Record notes the outcome of a status write of svc's object of kind (ServiceExport or
// ServiceImport) in member: a refusal (err not nil) or an accepted write (nil). It says whether
// what the service reports changed.
func (r *Refusals) Record(svc ServiceKey, member, kind string, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := refusedObject{member, kind}
	if err == nil {
		if _, had := r.m[svc][o]; !had {
			return false
		}
		delete(r.m[svc], o)
		if len(r.m[svc]) == 0 {
			delete(r.m, svc)
		}
		return true
	}
	msg := err.Error()
	if r.m[svc] == nil {
		r.m[svc] = map[refusedObject]string{}
	}
	if r.m[svc][o] == msg {
		return false
	}
	r.m[svc][o] = msg
	return true
}

// Forget drops what is remembered of a service that is no longer imported anywhere.
func (r *Refusals) Forget(svc ServiceKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, svc)
}

// Condition is the service's StatusWritten condition.
func (r *Refusals) Condition(svc ServiceKey) metav1.Condition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return statusWritten(svc, r.m[svc])
}

// statusWritten reports a service's refused status writes, by member and kind.
func statusWritten(svc ServiceKey, refused map[refusedObject]string) metav1.Condition {
	if len(refused) == 0 {
		return metav1.Condition{Type: netv1alpha1.StatusWrittenCondition, Status: metav1.ConditionTrue, Reason: netv1alpha1.StatusWrittenReason,
			Message: "Every member accepted the status Meridian wrote for the service."}
	}
	objs := make([]refusedObject, 0, len(refused))
	for o := range refused {
		objs = append(objs, o)
	}
	sort.Slice(objs, func(a, b int) bool {
		if objs[a].member != objs[b].member {
			return objs[a].member < objs[b].member
		}
		return objs[a].kind < objs[b].kind
	})
	parts := make([]string, 0, len(objs))
	for _, o := range objs {
		parts = append(parts, fmt.Sprintf("Member %s refused the status of %s %s/%s: %s.", o.member, o.kind, svc.Namespace, svc.Name, strings.TrimSuffix(refused[o], ".")))
	}
	parts = append(parts, "Let Meridian's user write that status there (admission policies, RBAC); it is written again on the service's next change.")
	return metav1.Condition{Type: netv1alpha1.StatusWrittenCondition, Status: metav1.ConditionFalse, Reason: netv1alpha1.StatusWriteRefusedReason,
		Message: strings.Join(parts, " ")}
}
