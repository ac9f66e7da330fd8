// Package agentconfig compiles an AgentConfig into what each selected member cluster needs to run
// Meridian's node agent, and plans the rollout of a change across clusters. It is pure: it reads
// values and returns values; the AgentConfig controller writes the results as ClusterWorks.
package agentconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	membercrds "github.com/meridian-io/meridian/config/crd/member"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/internal/agent/agentfile"
	"github.com/meridian-io/meridian/internal/placement"
)

// Names of what the agent's install creates in a member.
const (
	// AgentName names the agent's ServiceAccount, DaemonSet, roles and bindings.
	AgentName = "meridian-node-agent"
	// ConfigMapName holds the agent's config file.
	ConfigMapName = "meridian-node-agent-config"
	// OwnNodePolicyName names the ValidatingAdmissionPolicy (and its binding) that lets an agent
	// write only its own node's NodeAgentInfo and Lease.
	OwnNodePolicyName = "meridian-node-agent-own-node"
	// ConfigMountPath is where the config ConfigMap is mounted in the agent's container.
	ConfigMountPath = "/etc/meridian-agent"
	// NodeAgentInfoCRDName is the CRD the agent writes.
	NodeAgentInfoCRDName = "nodeagentinfos.member.meridian.io"
	// MemberNetworkPolicyCRDName is the CRD of the policies the agent enforces. Installed with
	// the agent, it makes the hub choose Meridian's exact form for the member (docs/policy.md):
	// the agent is then the member's implementation of GlobalNetworkPolicies.
	MemberNetworkPolicyCRDName = "membernetworkpolicies.member.meridian.io"
	// NodeNameExtra is the user-info extra key that carries the node name of a service account
	// token bound to a pod (Kubernetes 1.32+, ServiceAccountTokenPodNodeInfo).
	NodeNameExtra = "authentication.kubernetes.io/node-name"
	// RevisionAnnotation on a ClusterWork names the rollout revision it carries.
	RevisionAnnotation = "agent.meridian.io/revision"
	// AppLabel selects the agent's pods.
	AppLabel = "app.kubernetes.io/name"
)

// AgentUsername is the user name the agent's service account tokens authenticate as.
var AgentUsername = "system:serviceaccount:" + memberv1alpha1.AgentNamespace + ":" + AgentName

// Select returns the names of the MemberClusters the AgentConfig selects, sorted.
func Select(ac *fleetv1alpha1.AgentConfig, members []fleetv1alpha1.MemberCluster) ([]string, error) {
	return placement.Select(ac.Spec.Placement, members)
}

// WorkName is the name of the ClusterWork that carries the AgentConfig to a member.
func WorkName(ac *fleetv1alpha1.AgentConfig) string {
	return fleetv1alpha1.AgentWorkNamePrefix + ac.Name
}

// Settings are the agent settings for one member: the base config with every override whose
// selector matches the member's labels applied, in list order.
func Settings(ac *fleetv1alpha1.AgentConfig, memberLabels map[string]string) (fleetv1alpha1.AgentSettings, error) {
	s := *ac.Spec.Config.DeepCopy()
	for i := range ac.Spec.Overrides {
		o := &ac.Spec.Overrides[i]
		sel, err := metav1.LabelSelectorAsSelector(&o.ClusterSelector)
		if err != nil {
			return s, fmt.Errorf("spec.overrides[%s].clusterSelector: %w", o.Name, err)
		}
		if !sel.Matches(labels.Set(memberLabels)) {
			continue
		}
		c := o.Config
		if c.EnforcementMode != nil {
			s.EnforcementMode = *c.EnforcementMode
		}
		if c.DropLoggingEnabled != nil {
			s.DropLogging.Enabled = *c.DropLoggingEnabled
		}
		if c.DropLoggingRatePerSecond != nil {
			s.DropLogging.RatePerSecond = *c.DropLoggingRatePerSecond
		}
		if c.HeartbeatIntervalSeconds != nil {
			s.HeartbeatIntervalSeconds = *c.HeartbeatIntervalSeconds
		}
		if c.LogVerbosity != nil {
			s.LogVerbosity = *c.LogVerbosity
		}
		if c.MetricsPort != nil {
			s.MetricsPort = *c.MetricsPort
		}
		for k, v := range c.FeatureGates {
			if s.FeatureGates == nil {
				s.FeatureGates = map[string]bool{}
			}
			s.FeatureGates[k] = v
		}
	}
	return s, nil
}

// Member is what the compiler produces for one member.
type Member struct {
	// Objects to apply, in apply order (namespace and CRD first).
	Objects []*unstructured.Unstructured
	// ConfigFile is the agent's config file and ConfigHash its hash.
	ConfigFile []byte
	ConfigHash string
	// Settings are the member's settings, overrides applied.
	Settings fleetv1alpha1.AgentSettings
	// Revision identifies image, version and config: an agent is updated when it runs it.
	Revision string
}

// Compile returns the objects that run the AgentConfig's agent in one member.
func Compile(ac *fleetv1alpha1.AgentConfig, member *fleetv1alpha1.MemberCluster) (*Member, error) {
	settings, err := Settings(ac, member.Labels)
	if err != nil {
		return nil, err
	}
	cfg := agentfile.FromSettings(settings)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("the agent config for cluster %s: %w", member.Name, err)
	}
	file, err := agentfile.Render(cfg)
	if err != nil {
		return nil, err
	}
	hash := agentfile.Hash(file)
	out := &Member{ConfigFile: file, ConfigHash: hash, Settings: settings, Revision: Revision(ac.Spec.Image, ac.Spec.Version, hash)}

	ns := memberv1alpha1.AgentNamespace
	typed := []runtime.Object{
		&corev1.Namespace{TypeMeta: tm("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: ns}},
	}
	typed = append(typed,
		&corev1.ServiceAccount{TypeMeta: tm("v1", "ServiceAccount"), ObjectMeta: metav1.ObjectMeta{Name: AgentName, Namespace: ns}},
		&rbacv1.ClusterRole{
			TypeMeta:   tm("rbac.authorization.k8s.io/v1", "ClusterRole"),
			ObjectMeta: metav1.ObjectMeta{Name: AgentName},
			// create cannot be narrowed by resourceNames: the admission policy below narrows
			// every write to the agent's own node.
			Rules: AgentClusterRules(),
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   tm("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
			ObjectMeta: metav1.ObjectMeta{Name: AgentName},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: AgentName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: AgentName, Namespace: ns}},
		},
		&rbacv1.Role{
			TypeMeta:   tm("rbac.authorization.k8s.io/v1", "Role"),
			ObjectMeta: metav1.ObjectMeta{Name: AgentName, Namespace: ns},
			// list, watch: the elected agent reads every agent's Lease to count the live ones.
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update"}}},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   tm("rbac.authorization.k8s.io/v1", "RoleBinding"),
			ObjectMeta: metav1.ObjectMeta{Name: AgentName, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: AgentName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: AgentName, Namespace: ns}},
		},
		ownNodePolicy(),
		&admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			TypeMeta:   tm("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"),
			ObjectMeta: metav1.ObjectMeta{Name: OwnNodePolicyName},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        OwnNodePolicyName,
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			},
		},
		&corev1.ConfigMap{
			TypeMeta:   tm("v1", "ConfigMap"),
			ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: ns},
			Data:       map[string]string{agentfile.FileName: string(file)},
		},
		daemonSet(ac, settings, hash),
	)
	for _, o := range typed {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{Object: m}
		// Typed objects carry an empty creationTimestamp and status; a member object has neither.
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(u.Object, "status")
		out.Objects = append(out.Objects, u)
		if o == typed[0] {
			// The namespace first, the CRDs next: the order the syncer applies in anyway.
			for _, name := range []string{NodeAgentInfoCRDName, MemberNetworkPolicyCRDName} {
				crd, err := membercrds.CRD(name)
				if err != nil {
					return nil, err
				}
				out.Objects = append(out.Objects, crd)
			}
		}
	}
	return out, nil
}

// AgentClusterRules are the agent's cluster-wide permissions, least privilege: write its
// NodeAgentInfo, and read (list and watch, for its informers; nothing else) what its dataplane
// compiles: the MemberNetworkPolicies, the namespace NetworkPolicies, and the Pods and Namespaces
// that selectors resolve over.
func AgentClusterRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{memberv1alpha1.GroupVersion.Group}, Resources: []string{"nodeagentinfos"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
		{APIGroups: []string{memberv1alpha1.GroupVersion.Group}, Resources: []string{"membernetworkpolicies"}, Verbs: []string{"list", "watch"}},
		// The elected agent writes each policy's realization (nodes realized / desired).
		{APIGroups: []string{memberv1alpha1.GroupVersion.Group}, Resources: []string{"membernetworkpolicies/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"pods", "namespaces"}, Verbs: []string{"list", "watch"}},
	}
}

// Revision names what an agent runs: image, version and config file.
func Revision(image, version, configHash string) string {
	sum := sha256.Sum256([]byte(image + "\x00" + version + "\x00" + configHash))
	return hex.EncodeToString(sum[:8])
}

func tm(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

// ownNodePolicy lets the agent's service account write only the NodeAgentInfo named for the node
// its token is bound to, and only that node's Lease. The node name comes from the token: a token
// bound to a pod carries the pod's node, and the apiserver puts it in the user's extra.
func ownNodePolicy() *admissionregistrationv1.ValidatingAdmissionPolicy {
	nodeName := fmt.Sprintf(`has(request.userInfo.extra) && '%[1]s' in request.userInfo.extra && size(request.userInfo.extra['%[1]s']) == 1 ? request.userInfo.extra['%[1]s'][0] : ''`, NodeNameExtra)
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   tm("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"),
		ObjectMeta: metav1.ObjectMeta{Name: OwnNodePolicyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{
					{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{memberv1alpha1.GroupVersion.Group}, APIVersions: []string{"*"}, Resources: []string{"nodeagentinfos"}},
					}},
					{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"coordination.k8s.io"}, APIVersions: []string{"*"}, Resources: []string{"leases"}},
					}},
				},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "node-agent",
				Expression: fmt.Sprintf("request.userInfo.username == '%s'", AgentUsername),
			}},
			Variables: []admissionregistrationv1.Variable{
				{Name: "nodeName", Expression: nodeName},
				{Name: "name", Expression: "request.name"},
			},
			Validations: []admissionregistrationv1.Validation{
				{
					Expression: "variables.nodeName != ''",
					Message:    "the Meridian node agent must authenticate with a service account token bound to its pod (the token carries no node name); use the pod's projected token",
				},
				{
					Expression:        "variables.nodeName == '' || request.resource.resource != 'nodeagentinfos' || variables.name == variables.nodeName",
					MessageExpression: "'the Meridian node agent of node ' + variables.nodeName + ' may write only NodeAgentInfo ' + variables.nodeName + ', not ' + variables.name",
				},
				{
					// Besides its own Lease, the election Lease of the realization writer, only with
					// itself as holder (or none: a release). Taking it costs nothing but who reports.
					Expression: fmt.Sprintf("variables.nodeName == '' || request.resource.resource != 'leases' || variables.name == '%s' + variables.nodeName || "+
						"(variables.name == '%s' && request.operation != 'DELETE' && (!has(object.spec.holderIdentity) || object.spec.holderIdentity in ['', variables.nodeName]))",
						memberv1alpha1.AgentLeasePrefix, memberv1alpha1.RealizationLeaseName),
					MessageExpression: fmt.Sprintf("'the Meridian node agent of node ' + variables.nodeName + ' may write only Lease %s' + variables.nodeName + ', not ' + variables.name + ' (and hold Lease %s as itself)'", memberv1alpha1.AgentLeasePrefix, memberv1alpha1.RealizationLeaseName),
				},
			},
		},
	}
}

func daemonSet(ac *fleetv1alpha1.AgentConfig, s fleetv1alpha1.AgentSettings, configHash string) *appsv1.DaemonSet {
	selector := map[string]string{AppLabel: AgentName}
	podLabels := map[string]string{AppLabel: AgentName, "app.kubernetes.io/version": ac.Spec.Version}
	maxUnavailable := ac.Spec.Rollout.MaxUnavailable
	if maxUnavailable == nil {
		maxUnavailable = ptr.To(intstr.FromInt32(1))
	}
	port := s.MetricsPort
	if port == 0 {
		port = agentfile.DefaultMetricsPort
	}
	probe := &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(port)}},
		PeriodSeconds: 10,
	}
	return &appsv1.DaemonSet{
		TypeMeta:   tm("apps/v1", "DaemonSet"),
		ObjectMeta: metav1.ObjectMeta{Name: AgentName, Namespace: memberv1alpha1.AgentNamespace, Labels: podLabels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type:          appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: maxUnavailable},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: podLabels,
					// A changed config file changes the template, so the DaemonSet rolls.
					Annotations: map[string]string{fleetv1alpha1.AgentConfigHashAnnotation: configHash},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName: AgentName,
					HostNetwork:        true,
					DNSPolicy:          corev1.DNSClusterFirstWithHostNet,
					PriorityClassName:  "system-node-critical",
					// The agent runs on every node, whatever its taints.
					Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{
						Name:  "agent",
						Image: ac.Spec.Image,
						Args:  []string{"--config=" + ConfigMountPath + "/" + agentfile.FileName},
						Env: []corev1.EnvVar{{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{
							FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
						Ports:          []corev1.ContainerPort{{Name: "metrics", ContainerPort: port, Protocol: corev1.ProtocolTCP}},
						ReadinessProbe: probe,
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
						},
						// Root with only the capabilities the dataplane needs to program the node's network.
						SecurityContext: &corev1.SecurityContext{
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}},
							Privileged:               ptr.To(false),
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: ConfigMountPath, ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMapName}}}}},
				},
			},
		},
	}
}

// Feedback names under which the Work reports the agent DaemonSet's status.
const (
	FeedbackGeneration         = "generation"
	FeedbackObservedGeneration = "observedGeneration"
	FeedbackDesired            = "desired"
	FeedbackUpdated            = "updated"
	FeedbackReady              = "ready"
)

// DesiredWork is the ClusterWork that carries the compiled objects to one member.
func DesiredWork(ac *fleetv1alpha1.AgentConfig, member string, m *Member) (*fleetv1alpha1.ClusterWork, error) {
	w := &fleetv1alpha1.ClusterWork{
		ObjectMeta: metav1.ObjectMeta{
			Name:        WorkName(ac),
			Namespace:   fleetv1alpha1.MemberClusterNamespacePrefix + member,
			Labels:      map[string]string{fleetv1alpha1.AgentConfigLabel: ac.Name, fleetv1alpha1.MemberClusterLabel: member},
			Annotations: map[string]string{RevisionAnnotation: m.Revision, fleetv1alpha1.AgentVersionAnnotation: ac.Spec.Version, fleetv1alpha1.AgentWorkConfigHashAnnotation: m.ConfigHash},
			Finalizers:  []string{fleetv1alpha1.WorkFinalizer},
		},
		Spec: fleetv1alpha1.ClusterWorkSpec{
			DeletionPolicy: fleetv1alpha1.DeletionPolicyDelete,
			StatusFeedback: []fleetv1alpha1.FeedbackRule{{
				Group: "apps", Kind: "DaemonSet", Name: AgentName, Namespace: memberv1alpha1.AgentNamespace,
				Fields: []fleetv1alpha1.FeedbackField{
					{Name: FeedbackGeneration, JSONPath: ".metadata.generation"},
					{Name: FeedbackObservedGeneration, JSONPath: ".status.observedGeneration"},
					{Name: FeedbackDesired, JSONPath: ".status.desiredNumberScheduled"},
					{Name: FeedbackUpdated, JSONPath: ".status.updatedNumberScheduled"},
					{Name: FeedbackReady, JSONPath: ".status.numberReady"},
				},
			}},
		},
	}
	for _, o := range m.Objects {
		raw, err := json.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		w.Spec.Objects = append(w.Spec.Objects, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	return w, nil
}
