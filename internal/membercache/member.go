package membercache

import (
	"context"
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Member is one connection to a member cluster: the clients every subscriber shares. It is valid
// until its Context ends (the member was disconnected or its credentials replaced); a new
// connection is a new Member.
type Member struct {
	// Name of the MemberCluster.
	Name string
	// Fingerprint identifies the connection: it changes with the kubeconfig or the options.
	Fingerprint string

	// Dynamic, Metadata and Kubernetes send requests bounded by the member's request timeout.
	Dynamic    dynamic.Interface
	Metadata   metadata.Interface
	Kubernetes kubernetes.Interface
	// Mapper maps kinds to resources from the member's discovery, lazily.
	Mapper meta.RESTMapper

	// WatchDynamic and WatchKubernetes have no per-request timeout, which would cut every watch
	// after that long: they are for informers only.
	WatchDynamic    dynamic.Interface
	WatchKubernetes kubernetes.Interface
	// Informers and DynamicInformers are the member's shared informer factories (over the watch
	// clients). A subscriber asks them for its informers, then starts them with
	// Informers.Start(m.Done()); an informer's transform is set by the one subscriber that owns
	// that resource's shape. Informers with their own label or field selector are made with
	// dynamicinformer.NewFilteredDynamicInformer over WatchDynamic, run until Done.
	Informers        informers.SharedInformerFactory
	DynamicInformers dynamicinformer.DynamicSharedInformerFactory

	ctx         context.Context
	httpClients []*http.Client
}

// Context ends when the connection does.
func (m *Member) Context() context.Context { return m.ctx }

// Done is closed when the connection ends.
func (m *Member) Done() <-chan struct{} { return m.ctx.Done() }

func newMember(ctx context.Context, name, fingerprint string, cfg *rest.Config) (*Member, error) {
	invalid := func(what string, err error) error {
		return &InvalidKubeconfigError{Err: fmt.Errorf("%s for member %s: %w", what, name, err)}
	}
	// One rate limit for every client of the member, watches included.
	if cfg.QPS > 0 {
		burst := cfg.Burst
		if burst < 1 {
			burst = 1
		}
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, burst)
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, invalid("HTTP client", err)
	}
	watchCfg := rest.CopyConfig(cfg)
	watchCfg.Timeout = 0
	watchHTTP, err := rest.HTTPClientFor(watchCfg)
	if err != nil {
		return nil, invalid("HTTP watch client", err)
	}
	m := &Member{Name: name, Fingerprint: fingerprint, ctx: ctx, httpClients: []*http.Client{httpClient, watchHTTP}}
	if m.Dynamic, err = dynamic.NewForConfigAndClient(cfg, httpClient); err != nil {
		return nil, invalid("dynamic client", err)
	}
	if m.Metadata, err = metadata.NewForConfigAndClient(cfg, httpClient); err != nil {
		return nil, invalid("metadata client", err)
	}
	if m.Kubernetes, err = kubernetes.NewForConfigAndClient(cfg, httpClient); err != nil {
		return nil, invalid("client", err)
	}
	if m.Mapper, err = apiutil.NewDynamicRESTMapper(cfg, httpClient); err != nil {
		return nil, invalid("REST mapper", err)
	}
	if m.WatchDynamic, err = dynamic.NewForConfigAndClient(watchCfg, watchHTTP); err != nil {
		return nil, invalid("dynamic watch client", err)
	}
	if m.WatchKubernetes, err = kubernetes.NewForConfigAndClient(watchCfg, watchHTTP); err != nil {
		return nil, invalid("watch client", err)
	}
	m.Informers = informers.NewSharedInformerFactory(m.WatchKubernetes, 0)
	m.DynamicInformers = dynamicinformer.NewDynamicSharedInformerFactory(m.WatchDynamic, 0)
	return m, nil
}

// closeIdle drops the connection's idle TCP connections once it has ended, so that nothing of
// the old credentials lingers.
func (m *Member) closeIdle() {
	for _, c := range m.httpClients {
		c.CloseIdleConnections()
	}
}
