package testbed

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// JoinMembers registers every member of the bed as a MemberCluster reached through its kubeconfig
// Secret, with labels[member] and the given probe settings (zero: the API's defaults), and waits
// until each is Ready and has its hub namespace. A manager must be running.
func (b *Bed) JoinMembers(ctx context.Context, probe fleetv1alpha1.ProbeSettings, labels map[string]map[string]string) error {
	for _, m := range b.Members {
		if err := b.Hub.Client.Create(ctx, &fleetv1alpha1.MemberCluster{
			ObjectMeta: metav1.ObjectMeta{Name: m.Name, Labels: labels[m.Name]},
			Spec: fleetv1alpha1.MemberClusterSpec{
				KubeconfigSecretRef: &fleetv1alpha1.KubeconfigSecretReference{Namespace: KubeconfigSecretNamespace, Name: KubeconfigSecretName(m.Name)},
				Probe:               probe,
			},
		}); err != nil {
			return fmt.Errorf("create MemberCluster %s: %w", m.Name, err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, m := range b.Members {
		for {
			mc := &fleetv1alpha1.MemberCluster{}
			if err := b.Hub.Client.Get(ctx, client.ObjectKey{Name: m.Name}, mc); err != nil {
				return err
			}
			if meta.IsStatusConditionTrue(mc.Status.Conditions, fleetv1alpha1.ReadyCondition) && mc.Status.Namespace != "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("MemberCluster %s not Ready with its hub namespace within 2 minutes", m.Name)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}
