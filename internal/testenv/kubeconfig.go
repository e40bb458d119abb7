package testenv

import (
	"net/http"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig renders cfg (endpoint, CA, client certificate or token,
// impersonation) as a kubeconfig, for a manager binary or kubectl.
func Kubeconfig(cfg *rest.Config) ([]byte, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
		Impersonate:           cfg.Impersonate.UserName,
		ImpersonateGroups:     cfg.Impersonate.Groups,
	}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "user"}
	kc.CurrentContext = "envtest"
	return clientcmd.Write(*kc)
}

// WriteKubeconfig writes Kubeconfig(cfg) to a new file (mode 0600) in dir,
// or in the system's temporary directory when dir is "", and returns its
// path.
func WriteKubeconfig(cfg *rest.Config, dir string) (string, error) {
	kc, err := Kubeconfig(cfg)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "kubeconfig-")
	if err != nil {
		return "", err
	}
	_ = f.Close()
	return f.Name(), os.WriteFile(f.Name(), kc, 0o600)
}

// APIPath returns the parts of an API request's path after the group,
// version and namespace: [resource], [resource name] or [resource name
// subresource]; nil for anything else (discovery, a namespace itself, ...).
func APIPath(r *http.Request) []string {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return nil
	}
	if len(parts) > 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return nil
	}
	return parts
}
