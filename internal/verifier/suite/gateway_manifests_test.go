package suite_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	. "github.com/onsi/gomega"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

// CRDs of the gateways whose manifests docs/gateways.md shows, from the Go
// module proxy (go mod download, cached in GOMODCACHE): module, version,
// file in the module, and the CRDs taken from it.
var gatewayCRDs = []struct{ module, version, file string }{
	{"github.com/envoyproxy/gateway", "v1.9.1", "charts/gateway-crds-helm/templates/generated/gateway.envoyproxy.io_securitypolicies.yaml"},
	{"sigs.k8s.io/gateway-api", "v1.6.3", "config/crd/standard/gateway.networking.k8s.io_referencegrants.yaml"},
	{"istio.io/api", "v1.32.0", "kubernetes/customresourcedefinitions.gen.yaml"},
}

// wantCRDs are the CRDs the manifests need; the others in those files are
// not installed.
var wantCRDs = map[string]bool{
	"securitypolicies.gateway.envoyproxy.io":    true,
	"referencegrants.gateway.networking.k8s.io": true,
	"authorizationpolicies.security.istio.io":   true,
}

// moduleDir downloads module@version through the Go module proxy (or finds
// it in the module cache) and returns its directory.
func moduleDir(t *testing.T, module, version string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = t.TempDir() // outside this module: no go.mod is touched
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	_ = json.Unmarshal(out, &info)
	if err != nil || info.Dir == "" {
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go mod download %s@%s: %v %s %s", module, version, err, info.Error, stderr)
	}
	return info.Dir
}

// installGatewayCRDs installs wantCRDs and waits until they are served.
func installGatewayCRDs(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	found := map[string]bool{}
	for _, src := range gatewayCRDs {
		raw, err := os.ReadFile(filepath.Join(moduleDir(t, src.module, src.version), src.file))
		if err != nil {
			t.Fatal(err)
		}
		// Envoy Gateway's CRDs are Helm templates guarded by one
		// {{- if }} … {{- end }}: the lines in between are the CRD.
		var lines []string
		for _, l := range strings.Split(string(raw), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "{{") {
				lines = append(lines, l)
			}
		}
		for _, obj := range decodeYAML(t, strings.Join(lines, "\n")) {
			if obj.GetKind() != "CustomResourceDefinition" || !wantCRDs[obj.GetName()] {
				continue
			}
			found[obj.GetName()] = true
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := jsonRoundTrip(obj.Object, crd); err != nil {
				t.Fatalf("%s from %s@%s: %v", obj.GetName(), src.module, src.version, err)
			}
			if err := env.Client.Create(ctx, obj); client.IgnoreAlreadyExists(err) != nil {
				t.Fatalf("installing %s from %s@%s: %v", obj.GetName(), src.module, src.version, err)
			}
		}
	}
	for name := range wantCRDs {
		if !found[name] {
			t.Fatalf("CRD %s is not in the modules' files %v", name, gatewayCRDs)
		}
		NewWithT(t).Eventually(func(g Gomega) {
			u := &unstructured.Unstructured{}
			u.SetAPIVersion("apiextensions.k8s.io/v1")
			u.SetKind("CustomResourceDefinition")
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: name}, u)).To(Succeed())
			crd := &apiextensionsv1.CustomResourceDefinition{}
			g.Expect(jsonRoundTrip(u.Object, crd)).To(Succeed())
			established := false
			for _, c := range crd.Status.Conditions {
				established = established || c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
			}
			g.Expect(established).To(BeTrue(), "%s not Established", name)
		}).WithTimeout(30 * time.Second).Should(Succeed())
	}
}

func jsonRoundTrip(in any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func decodeYAML(t *testing.T, doc string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(doc), 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decoding YAML: %v", err)
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// applyDocBlock creates every object of the docs block in the API server as
// a dry run with strict field validation: a field the CRD does not know, a
// wrong type or a failing CEL rule is an error.
func applyDocBlock(ctx context.Context, block string, t *testing.T) error {
	for _, obj := range decodeYAML(t, block) {
		if ns := obj.GetNamespace(); ns != "" {
			if err := env.EnsureNamespace(ctx, ns); err != nil {
				return err
			}
		}
		if err := env.Client.Create(ctx, obj, client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict)); err != nil {
			return err
		}
	}
	return nil
}

// Acceptance (item 5): the Istio, Envoy Gateway and Envoy gRPC
// configurations in docs/gateways.md are what these gateways accept: the
// Kubernetes manifests are applied to the API server with the gateways' own
// CRDs, the Envoy and Istio mesh configuration parsed strictly into their
// own protos, so a typo in the docs fails here.
func TestGatewayManifests(t *testing.T) {
	installGatewayCRDs(t)

	for _, name := range []string{"envoy-gateway-grpc", "envoy-gateway-http", "istio-authorization-policy"} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			block := docBlock(t, name)
			g.Expect(applyDocBlock(t.Context(), block, t)).To(Succeed())
			// The check can fail: a misspelt field is refused.
			typo := strings.Replace(block, "failOpen:", "failopen:", 1)
			if name == "istio-authorization-policy" {
				typo = strings.Replace(block, "provider:", "providers:", 1)
			}
			g.Expect(typo).NotTo(Equal(block))
			g.Expect(applyDocBlock(t.Context(), typo, t)).NotTo(Succeed(), "a misspelt field must be refused")
		})
	}

	t.Run("envoy-gateway points at the verifier", func(t *testing.T) {
		g := NewWithT(t)
		for _, name := range []string{"envoy-gateway-grpc", "envoy-gateway-http"} {
			sp := decodeYAML(t, docBlock(t, name))[0]
			ext, _, _ := unstructured.NestedMap(sp.Object, "spec", "extAuth")
			g.Expect(ext).To(HaveKeyWithValue("failOpen", false), name)
			proto := "grpc"
			if name == "envoy-gateway-http" {
				proto = "http"
			}
			refs, _, _ := unstructured.NestedSlice(ext, proto, "backendRefs")
			g.Expect(refs).To(HaveLen(1))
			wantPort := map[string]int64{"grpc": 8083, "http": 8082}[proto]
			g.Expect(refs[0]).To(And(HaveKeyWithValue("name", "latchkey-verifier"), HaveKeyWithValue("namespace", "latchkey-system"),
				HaveKeyWithValue("port", BeNumerically("==", wantPort))))
		}
		exts, _, _ := unstructured.NestedSlice(decodeYAML(t, docBlock(t, "envoy-gateway-grpc"))[0].Object, "spec", "extAuth", "contextExtensions")
		g.Expect(exts).To(ContainElement(And(HaveKeyWithValue("name", "permission"), HaveKeyWithValue("value", "blogs.read"))))
	})

	t.Run("istio", func(t *testing.T) {
		g := NewWithT(t)
		var doc struct {
			MeshConfig json.RawMessage `json:"meshConfig"`
		}
		g.Expect(yaml.UnmarshalStrict([]byte(docBlock(t, "istio-mesh-config")), &doc)).To(Succeed())
		mc := &meshv1alpha1.MeshConfig{}
		g.Expect(protojson.Unmarshal(doc.MeshConfig, mc)).To(Succeed(), "meshConfig is not a valid Istio MeshConfig")
		g.Expect(mc.GetExtensionProviders()).To(HaveLen(1))
		p := mc.GetExtensionProviders()[0]
		grpcP := p.GetEnvoyExtAuthzGrpc()
		g.Expect(grpcP).NotTo(BeNil(), "the provider is not envoyExtAuthzGrpc")
		g.Expect(grpcP.GetPort()).To(BeEquivalentTo(8083))
		g.Expect(grpcP.GetService()).To(HavePrefix("latchkey-verifier.latchkey-system.svc"))
		g.Expect(grpcP.GetFailOpen()).To(BeFalse())
		// The AuthorizationPolicy names this provider.
		ap := decodeYAML(t, docBlock(t, "istio-authorization-policy"))[0]
		action, _, _ := unstructured.NestedString(ap.Object, "spec", "action")
		provider, _, _ := unstructured.NestedString(ap.Object, "spec", "provider", "name")
		g.Expect(action).To(Equal("CUSTOM"))
		g.Expect(provider).To(Equal(p.GetName()))
		// A misspelt field is refused.
		bad := bytes.Replace(doc.MeshConfig, []byte("failOpen"), []byte("failopen"), 1)
		g.Expect(protojson.Unmarshal(bad, &meshv1alpha1.MeshConfig{})).NotTo(Succeed())
	})

	t.Run("envoy-grpc", func(t *testing.T) { checkEnvoyGRPCDocs(t) })
}

// checkEnvoyGRPCDocs parses the Envoy gRPC block strictly into Envoy's
// protos, runs their validation rules, checks that the filter points at the
// health-checked HTTP/2 cluster and fails closed, and sends the route's
// context_extensions to the real verifier: a token without the route's
// permission is denied, one with it allowed.
func checkEnvoyGRPCDocs(t *testing.T) {
	g := NewWithT(t)
	docs := strings.Split(docBlock(t, "envoy-ext-authz-grpc"), "\n---\n")
	g.Expect(docs).To(HaveLen(2))
	parse := func(doc string, into proto.Message) {
		j, err := yaml.YAMLToJSON([]byte(doc))
		g.Expect(err).NotTo(HaveOccurred())
		a := &anypb.Any{}
		g.Expect(protojson.Unmarshal(j, a)).To(Succeed(), "not a valid Envoy config: %s", doc)
		g.Expect(a.UnmarshalTo(into)).To(Succeed())
		if v, ok := into.(interface{ ValidateAll() error }); ok {
			g.Expect(v.ValidateAll()).To(Succeed())
		}
	}
	hcm, cluster := &hcmv3.HttpConnectionManager{}, &clusterv3.Cluster{}
	parse(docs[0], hcm)
	parse(docs[1], cluster)

	var authz *extauthzv3.ExtAuthz
	for _, f := range hcm.GetHttpFilters() {
		if f.GetName() == "envoy.filters.http.ext_authz" {
			authz = &extauthzv3.ExtAuthz{}
			g.Expect(f.GetTypedConfig().UnmarshalTo(authz)).To(Succeed())
		}
	}
	g.Expect(authz).NotTo(BeNil())
	g.Expect(authz.GetFailureModeAllow()).To(BeFalse())
	g.Expect(authz.GetGrpcService().GetEnvoyGrpc().GetClusterName()).To(Equal(cluster.GetName()))
	g.Expect(authz.GetAllowedHeaders()).To(BeNil(), "allowed_headers would hide the client's X-Latchkey-* headers from the verifier")
	g.Expect(authz.GetWithRequestBody()).To(BeNil())
	g.Expect(hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction().String()).To(Equal("REJECT_REQUEST"))
	g.Expect(cluster.GetTypedExtensionProtocolOptions()).To(HaveKey("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"))
	g.Expect(cluster.GetHealthChecks()).To(HaveLen(1))
	g.Expect(cluster.GetHealthChecks()[0].GetGrpcHealthCheck().GetServiceName()).To(Equal("envoy.service.auth.v3.Authorization"))
	sa := cluster.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	g.Expect(sa.GetPortValue()).To(BeEquivalentTo(8083))

	// The route's context_extensions, as the filter sends them.
	route := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0]
	per := &extauthzv3.ExtAuthzPerRoute{}
	g.Expect(route.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"].UnmarshalTo(per)).To(Succeed())
	ext := per.GetCheckSettings().GetContextExtensions()
	g.Expect(ext).To(HaveKeyWithValue("permission", "blogs.read"))

	gln := grpcListener(t)
	f := newFixture(t, func(o *operator.Options) { o.VerifierGRPCListener = gln })
	authz2, _ := grpcClient(t, gln.Addr().String(), nil)
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "blog"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"blogs"}, Permissions: []string{"blogs.read", "blogs.write"}, Tenant: "2"}}
	f.create(c)
	f.waitReady(c)
	for _, gr := range []*latchkeyv1alpha1.CredentialGrant{
		grant("reader", "blog", latchkeyv1alpha1.CredentialTypeBearer, "blogs.read"),
		grant("writer", "blog", latchkeyv1alpha1.CredentialTypeBearer, "blogs.write"),
	} {
		f.create(gr)
		f.waitReady(gr)
	}
	for name, want := range map[string]int32{"reader": 200, "writer": 403} {
		req := checkRequest(bearer(f.secret(name)["token"]), "")
		req.Attributes.ContextExtensions = ext
		resp, err := authz2.Check(f.ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
		code := int32(http.StatusOK)
		if d := resp.GetDeniedResponse(); d != nil {
			code = int32(d.GetStatus().GetCode())
		}
		g.Expect(code).To(Equal(want), name)
	}
}
