package install_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// kubeProxy plays kube-proxy for the hub's apiserver, which reaches cluster addresses through it
// (testbed.Options.ClusterEgressProxy): the apiserver asks it, with HTTP CONNECT, for a Service's
// ClusterIP and port, and it connects the apiserver to that Service's endpoint, as kube-proxy's
// rules would. A ClusterIP with no endpoint is refused, as kube-proxy rejects it.
type kubeProxy struct {
	l     net.Listener
	mu    sync.Mutex
	route map[string]string // ClusterIP:port → endpoint address
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startKubeProxy(t *testing.T) *kubeProxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "meridian-kube-proxy-") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "proxy.sock"))
	if err != nil {
		t.Fatal(err)
	}
	p := &kubeProxy{l: l, route: map[string]string{}, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.stop)
	return p
}

func (p *kubeProxy) socket() string { return p.l.Addr().String() }

// setEndpoint routes a Service's ClusterIP:port to an endpoint.
func (p *kubeProxy) setEndpoint(clusterIPPort, endpoint string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.route[clusterIPPort] = endpoint
}

func (p *kubeProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return // stopped
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.handle(c)
		}()
	}
}

func (p *kubeProxy) handle(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	req, err := http.ReadRequest(r)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	p.mu.Lock()
	endpoint, ok := p.route[req.Host]
	p.mu.Unlock()
	if !ok {
		io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\n\r\n")
		return
	}
	backend, err := net.Dial("tcp", endpoint)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	if !p.track(backend) {
		backend.Close()
		return
	}
	defer p.untrack(backend)
	defer backend.Close()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(backend, r) // what the client sent, including anything already buffered
		if tc, ok := backend.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = io.Copy(c, backend)
	c.Close()
	<-done
}

func (p *kubeProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *kubeProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *kubeProxy) stop() {
	p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
