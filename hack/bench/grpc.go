package main

import (
	"context"
	"fmt"
	"net"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// nullAuthorization answers every Check OK with what the verifier answers a
// valid bearer token: the six identity headers (static values of the same
// size) and the headers to remove. Its throughput is the floor of the gRPC
// ext_authz contract itself on this machine.
type nullAuthorization struct {
	authv3.UnimplementedAuthorizationServer
}

func (nullAuthorization) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	set := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(rpccode.Code_OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{
				set("x-latchkey-client-id", "id_P3OsKW8jmcsM174m"), set("x-latchkey-tenant", "2"),
				set("x-latchkey-permissions", "blogs.read"), set("x-latchkey-token-id", "327jlwr6arrfl3pj"),
				set("x-latchkey-allow-impersonate", "false"), set("x-latchkey-allow-login", "false"),
			},
			HeadersToRemove: []string{"authorization", "x-api-key"},
		}},
	}, nil
}

// startNullGRPC serves nullAuthorization on a loopback port, with the
// verifier's own message-size bound.
func startNullGRPC() (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(128 << 10))
	authv3.RegisterAuthorizationServer(srv, nullAuthorization{})
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), srv.Stop, nil
}

// checkRequests are CheckRequests as Envoy sends them for a GET with a
// bearer token: the valid token, and each unknown one.
func checkRequests(valid string, unknown []string) (*authv3.CheckRequest, []*authv3.CheckRequest) {
	req := func(tok string) *authv3.CheckRequest {
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: "10.0.0.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}}}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Id: "8c1f4b1e-6a57-4f1a-9d5e-0b1f4c2a9e31", Method: "GET", Path: "/v1/blogs/42", Host: "blogs.example", Scheme: "https", Protocol: "HTTP/1.1",
				Headers: map[string]string{
					":authority": "blogs.example", ":method": "GET", ":path": "/v1/blogs/42", ":scheme": "https",
					"user-agent": "curl/8.5.0", "accept": "*/*", "x-forwarded-proto": "https",
					"x-request-id": "8c1f4b1e-6a57-4f1a-9d5e-0b1f4c2a9e31", "authorization": "Bearer " + tok,
				}}},
			ContextExtensions: map[string]string{"permission": "blogs.read"},
		}}
	}
	out := make([]*authv3.CheckRequest, len(unknown))
	for i, u := range unknown {
		out[i] = req(u)
	}
	return req(valid), out
}

// loadGRPC runs fn from *concurrency workers for d, each with its own gRPC
// connection (as each HTTP worker has its own keep-alive connection).
func loadGRPC(name string, d time.Duration, addr string, fn func(c authv3.AuthorizationClient, i int) error) result {
	return drive(name, d, func() (func(i int) error, func()) {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return func(int) error { return err }, func() {}
		}
		c := authv3.NewAuthorizationClient(conn)
		return func(i int) error { return fn(c, i) }, func() { _ = conn.Close() }
	})
}

// check calls Check and wants OK (allow) or a denial.
func check(c authv3.AuthorizationClient, req *authv3.CheckRequest, allow bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, req)
	if err != nil {
		return err
	}
	if ok := resp.GetStatus().GetCode() == int32(rpccode.Code_OK); ok != allow {
		return fmt.Errorf("check answered %v, want allowed=%v", resp.GetStatus(), allow)
	}
	return nil
}
