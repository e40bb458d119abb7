package console

import (
	"context"
	"fmt"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// events streams server-sent events: one "change" whenever an ApiClient or
// a CredentialGrant of the namespace changes (from a watch with the user's
// rights), so the page re-reads its live region. The events carry no data
// but the kind: the page reads what changed with its own GET.
func (s *Server) events(w http.ResponseWriter, r *http.Request, _ *session) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported", http.StatusInternalServerError)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ns := s.namespaceParam(r)
	var opts []client.ListOption
	if ns != allNamespaces {
		opts = append(opts, client.InNamespace(ns))
	}
	type source struct {
		kind string
		list client.ObjectList
	}
	sources := []source{
		{latchkeyv1alpha1.ApiClientKind, &latchkeyv1alpha1.ApiClientList{}},
		{latchkeyv1alpha1.CredentialGrantKind, &latchkeyv1alpha1.CredentialGrantList{}},
	}
	changes := make(chan string, 16)
	var watchers []watch.Interface
	defer func() {
		for _, wi := range watchers {
			wi.Stop()
		}
	}()
	for _, src := range sources {
		// Watch from the list's version: only changes after the page was
		// read are events.
		if err := s.c.List(ctx, src.list, opts...); err != nil {
			_, p := explain(err)
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			_, _ = fmt.Fprintf(w, "retry: 60000\nevent: problem\ndata: %s\n\n", oneLine(p.Title))
			return
		}
		rv := src.list.(metav1.ListInterface).GetResourceVersion()
		wi, err := s.c.Watch(ctx, src.list, append(opts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: false}})...)
		if err != nil {
			_, p := explain(err)
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			_, _ = fmt.Fprintf(w, "retry: 60000\nevent: problem\ndata: %s\n\n", oneLine(p.Title))
			return
		}
		watchers = append(watchers, wi)
		go func(kind string, wi watch.Interface) {
			defer cancel() // a closed watch ends the stream; the page reconnects
			for ev := range wi.ResultChan() {
				if ev.Type == watch.Bookmark {
					continue
				}
				select {
				case changes <- kind:
				default: // one pending event is as good as many
				}
			}
		}(src.kind, wi)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	// One change at once: what changed between the page's read and the
	// watch's start is not lost.
	_, _ = fmt.Fprint(w, "retry: 2000\nevent: change\ndata: connected\n\n")
	flusher.Flush()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case kind := <-changes:
			if _, err := fmt.Fprintf(w, "event: change\ndata: %s\n\n", kind); err != nil {
				return
			}
			flusher.Flush()
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}
