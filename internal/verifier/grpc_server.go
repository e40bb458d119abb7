package verifier

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// healthInterval is how often the gRPC health status is brought in line
// with the verifier's readiness (Check answers from it at once).
const healthInterval = 250 * time.Millisecond

// grpcServer serves envoy.service.auth.v3.Authorization and grpc.health.v1
// on the verifier's gRPC port, on every replica.
type grpcServer struct {
	srv    *grpc.Server
	health *health.Server
	s      *Server
	ln     net.Listener
	// draining is set when the server stops: health is NOT_SERVING.
	draining            atomic.Bool
	startOnce, stopOnce sync.Once
	stopped             chan struct{}
}

// newGRPCServer builds the gRPC server on ln; tlsConfig nil: plaintext
// (h2c).
func newGRPCServer(s *Server, ln net.Listener, tlsConfig *tls.Config) *grpcServer {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxCheckRequestBytes),
		grpc.MaxHeaderListSize(16 << 10),
		grpc.ConnectionTimeout(5 * time.Second),
		grpc.MaxConcurrentStreams(1024),
		// Gateways keep their connections open; idle ones are closed after
		// as long as the HTTP server's keep-alive.
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 90 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if tlsConfig != nil {
		c := tlsConfig.Clone()
		c.NextProtos = []string{"h2"} // gRPC is HTTP/2 only
		opts = append(opts, grpc.Creds(credentials.NewTLS(c)))
	}
	g := &grpcServer{srv: grpc.NewServer(opts...), health: health.NewServer(), s: s, ln: ln}
	authv3.RegisterAuthorizationServer(g.srv, newAuthorizationServer(s))
	healthpb.RegisterHealthServer(g.srv, &readinessHealth{Server: g.health, s: s, draining: &g.draining})
	g.setHealth()
	return g
}

// setHealth publishes the verifier's readiness, for Watch.
func (g *grpcServer) setHealth() {
	if g.draining.Load() {
		return
	}
	st := healthpb.HealthCheckResponse_SERVING
	if g.s.ready() != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	g.health.SetServingStatus("", st)
	g.health.SetServingStatus(grpcServiceName, st)
}

// start serves in the background. It is called when the verifier's HTTP
// server starts serving (its BaseContext), and stop when that server shuts
// down (RegisterOnShutdown): controller-runtime starts HTTP servers before
// the caches sync, every other kind of runnable only after, and the gRPC
// port, like the HTTP port, must answer (NOT_SERVING, 503) before.
func (g *grpcServer) start() {
	g.startOnce.Do(func() {
		ln := g.ln
		g.s.log.Info("Serving gRPC ext_authz and health", "address", ln.Addr().String())
		g.stopped = make(chan struct{})
		go func() {
			t := time.NewTicker(healthInterval)
			defer t.Stop()
			for {
				select {
				case <-g.stopped:
					return
				case <-t.C:
					g.setHealth()
				}
			}
		}()
		go func() {
			if err := g.srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				g.s.log.Error(err, "gRPC server stopped")
			}
		}()
	})
}

// stop drains the server: health NOT_SERVING at once, in-flight Checks
// finish, for at most the HTTP server's shutdown timeout.
func (g *grpcServer) stop() {
	// Synchronises with start, and keeps a server never started from
	// starting later.
	g.startOnce.Do(func() {})
	g.stopOnce.Do(func() {
		g.draining.Store(true)
		g.health.Shutdown()
		if g.stopped != nil {
			close(g.stopped)
		}
		done := make(chan struct{})
		go func() { g.srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			g.srv.Stop()
		}
	})
}

// readinessHealth answers Check from the verifier's readiness at the moment
// of the call (synced, and no older than --max-staleness) and NOT_SERVING
// once the server drains; Watch streams the status setHealth publishes.
type readinessHealth struct {
	*health.Server
	s        *Server
	draining *atomic.Bool
}

func (h *readinessHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if _, err := h.Server.Check(ctx, req); err != nil {
		return nil, err // a service not served: NotFound
	}
	if h.draining.Load() || h.s.ready() != nil {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}
