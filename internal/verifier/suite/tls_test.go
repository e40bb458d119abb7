package suite_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/servingcert"
	"github.com/latchkey-dev/latchkey/internal/verifier"
)

// The verifier serves HTTPS with a certificate the operator issues from its
// own CA; clients that trust ca.crt verify it, plain HTTP gets nothing.
func TestVerifierTLS(t *testing.T) {
	g := NewWithT(t)
	ns, opNs := env.Namespace(t), env.Namespace(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	env.StartManager(t, operator.Options{Namespace: opNs, WatchNamespaces: []string{ns}, VerifierListener: ln,
		VerifierTLSIssue: true, Verifier: verifier.Options{TLSSecret: servingcert.DefaultSecretName}})

	sec := &corev1.Secret{}
	g.Eventually(func() error {
		return env.Client.Get(t.Context(), types.NamespacedName{Namespace: opNs, Name: servingcert.DefaultSecretName}, sec)
	}).WithTimeout(20 * time.Second).Should(Succeed())
	g.Expect(sec.Type).To(Equal(corev1.SecretTypeTLS))
	pool := x509.NewCertPool()
	g.Expect(pool.AppendCertsFromPEM(sec.Data[servingcert.KeyCA])).To(BeTrue())
	// The CA key stays in the operator namespace's own Secret, not beside
	// the serving certificate the verifier reads.
	g.Expect(sec.Data).NotTo(HaveKey("ca.key"))

	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	base := "https://" + ln.Addr().String()
	g.Eventually(func() int {
		resp, err := c.Get(base + "/readyz")
		if err != nil {
			return -1
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}).WithTimeout(20 * time.Second).Should(Equal(200))

	app := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"system"}, Permissions: []string{"system.read"}}}
	g.Expect(env.Client.Create(t.Context(), app)).To(Succeed())
	cs := &corev1.Secret{}
	g.Eventually(func() error { return env.Client.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "app"}, cs) }).
		WithTimeout(20 * time.Second).Should(Succeed())
	g.Eventually(func() int {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/verify", nil)
		req.SetBasicAuth(string(cs.Data["client_id"]), string(cs.Data["client_secret"]))
		resp, err := c.Do(req)
		if err != nil {
			return -1
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}).WithTimeout(20 * time.Second).Should(Equal(200))

	// Plain HTTP on the TLS port gets no answer a gateway could take for
	// a verification; a client that does not trust the CA refuses it.
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + ln.Addr().String() + "/readyz"); err == nil {
		g.Expect(resp.StatusCode).To(Equal(http.StatusBadRequest), "Go answers plain HTTP on a TLS port with 400")
		_ = resp.Body.Close()
	}
	_, err = (&http.Client{Timeout: 2 * time.Second}).Get(base + "/readyz")
	g.Expect(err).To(HaveOccurred(), "an untrusted certificate")
}
