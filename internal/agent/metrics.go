package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are one agent's own: each agent has its registry, so that many agents can share a process.
type metrics struct {
	registry          *prometheus.Registry
	heartbeats        prometheus.Counter
	heartbeatFailures prometheus.Counter
	reloads           *prometheus.CounterVec
	infoWrites        prometheus.Counter
	statusWrites      prometheus.Counter
	configInfo        *prometheus.GaugeVec
	process           []prometheus.Collector
	processOn         bool
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_agent_heartbeats_total", Help: "Lease renewals that succeeded."}),
		heartbeatFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_agent_heartbeat_failures_total", Help: "Lease renewals that failed."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_agent_config_reads_total", Help: "Reads of a new config file, by result (loaded, invalid, unreadable)."}, []string{"result"}),
		infoWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_agent_nodeagentinfo_writes_total", Help: "Writes of the node's NodeAgentInfo."}),
		statusWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_agent_policy_status_writes_total", Help: "Writes of MemberNetworkPolicy status by this agent while it held the realization Lease."}),
		configInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_agent_config_info", Help: "1 for the hash of the config file in force."}, []string{"hash"}),
		process: []prometheus.Collector{
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		},
	}
	m.registry.MustRegister(m.heartbeats, m.heartbeatFailures, m.reloads, m.infoWrites, m.statusWrites, m.configInfo)
	return m
}

func (m *metrics) setConfig(hash string) {
	m.configInfo.Reset()
	m.configInfo.WithLabelValues(hash).Set(1)
}

// setProcessCollectors obeys the ProcessMetrics gate.
func (m *metrics) setProcessCollectors(on bool) {
	if on == m.processOn {
		return
	}
	for _, c := range m.process {
		if on {
			m.registry.MustRegister(c)
		} else {
			m.registry.Unregister(c)
		}
	}
	m.processOn = on
}

type metricsServer struct {
	port   int32
	server *http.Server
}

// startMetricsServer serves /metrics, /healthz and /readyz on host:port, and the read-only
// handlers of extra by path. A failure to listen is returned; a later failure to serve is sent on
// errs.
func startMetricsServer(ctx context.Context, host string, port int32, reg *prometheus.Registry, extra map[string]http.Handler, errs chan<- error) (*metricsServer, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/readyz", ok)
	for path, h := range extra {
		mux.Handle(path, h)
	}
	s := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case errs <- err:
			default:
			}
		}
	}()
	return &metricsServer{port: port, server: s}, nil
}

func (s *metricsServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.server.Shutdown(ctx)
}
