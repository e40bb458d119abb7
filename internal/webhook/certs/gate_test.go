package certs

import (
	"context"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

type fakeServer struct {
	webhook.Server
	started chan struct{}
}

func (f *fakeServer) Start(ctx context.Context) error {
	close(f.started)
	<-ctx.Done()
	return nil
}

func TestGate(t *testing.T) {
	inner := &fakeServer{started: make(chan struct{})}
	certsReady, catalogReady := make(chan struct{}), make(chan struct{})
	s := Gate(inner, certsReady, catalogReady)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()

	close(certsReady)
	select {
	case <-inner.started:
		t.Fatal("started before every gate opened")
	case <-time.After(100 * time.Millisecond):
	}
	close(catalogReady)
	select {
	case <-inner.started:
	case <-time.After(5 * time.Second):
		t.Fatal("did not start once every gate opened")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Stopping before the gates open returns without starting.
	never := &fakeServer{started: make(chan struct{})}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := Gate(never, make(chan struct{})).Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-never.started:
		t.Fatal("started after the context ended")
	default:
	}
}
