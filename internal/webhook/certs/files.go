package certs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// fileWriter copies tls.crt and tls.key from the certificate Secret into
// CertDir, in place of the kubelet that mounts the Secret into a Pod. The
// rotator only writes the Secret and then waits for a file to appear in
// CertDir (ensureCertsMounted: exponential backoff, about 17 minutes in all);
// an operator running outside a Pod has no kubelet, so without this writer the
// webhook would never become ready. It keeps polling so that a renewed
// certificate reaches the webhook server, whose certwatcher reloads it.
type fileWriter struct {
	reader  client.Reader
	key     types.NamespacedName
	dir     string
	every   time.Duration
	written []byte // tls.crt last written
}

// NeedLeaderElection is false: every replica serves with its own files.
func (w *fileWriter) NeedLeaderElection() bool { return false }

func (w *fileWriter) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("webhook-cert-files")
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return fmt.Errorf("creating the webhook certificate directory: %w", err)
	}
	for {
		wrote, err := w.sync(ctx)
		if err != nil {
			log.Error(err, "Writing the webhook certificate files", "dir", w.dir)
		} else if wrote {
			log.Info("Wrote the webhook serving certificate", "dir", w.dir)
		}
		// Poll quickly until the rotator's first certificate is there.
		wait := w.every
		if w.written == nil {
			wait = 500 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// sync writes the Secret's key pair when it differs from what was written.
func (w *fileWriter) sync(ctx context.Context) (bool, error) {
	var s corev1.Secret
	if err := w.reader.Get(ctx, w.key, &s); err != nil {
		return false, fmt.Errorf("reading Secret %s: %w", w.key, err)
	}
	crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if len(crt) == 0 || len(key) == 0 || bytes.Equal(crt, w.written) {
		return false, nil
	}
	// The key first: the rotator takes tls.crt's existence as "mounted", and
	// the webhook server must then find a matching key.
	if err := writeAtomic(w.dir, corev1.TLSPrivateKeyKey, key); err != nil {
		return false, err
	}
	if err := writeAtomic(w.dir, corev1.TLSCertKey, crt); err != nil {
		return false, err
	}
	w.written = crt
	return true, nil
}

// writeAtomic replaces dir/name with an owner-only file, by rename so that a
// reader never sees half of it.
func writeAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}
