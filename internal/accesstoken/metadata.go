package accesstoken

import (
	"encoding/json"
	"strings"
)

// metadata is the RFC 8414 §2 document, in this order.
type metadata struct {
	Issuer                         string   `json:"issuer"`
	TokenEndpoint                  string   `json:"token_endpoint"`
	JWKSURI                        string   `json:"jwks_uri"`
	IntrospectionEndpoint          string   `json:"introspection_endpoint"`
	RevocationEndpoint             string   `json:"revocation_endpoint"`
	GrantTypes                     []string `json:"grant_types_supported"`
	ResponseTypes                  []string `json:"response_types_supported"`
	TokenEndpointAuthMethods       []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMeths []string `json:"introspection_endpoint_auth_methods_supported"`
}

// Metadata returns the RFC 8414 authorization server metadata document, for
// /.well-known/oauth-authorization-server, of the issuer identifier issuer
// (an https URL) whose endpoints live under baseURL (a trailing '/' is
// ignored): token_endpoint baseURL+"/oauth2/token", jwks_uri
// baseURL+"/.well-known/jwks.json", introspection_endpoint
// baseURL+"/oauth2/introspect", revocation_endpoint baseURL+"/oauth2/revoke";
// only the client_credentials grant, hence no response types; client
// secrets in HTTP Basic or the form body at the token endpoint, and Basic or
// a bearer token at introspection. scopes_supported is left out. The
// output is deterministic.
func Metadata(issuer, baseURL string) []byte {
	base := strings.TrimSuffix(baseURL, "/")
	b, err := json.Marshal(metadata{
		Issuer:                         issuer,
		TokenEndpoint:                  base + "/oauth2/token",
		JWKSURI:                        base + "/.well-known/jwks.json",
		IntrospectionEndpoint:          base + "/oauth2/introspect",
		RevocationEndpoint:             base + "/oauth2/revoke",
		GrantTypes:                     []string{"client_credentials"},
		ResponseTypes:                  []string{},
		TokenEndpointAuthMethods:       []string{"client_secret_basic", "client_secret_post"},
		IntrospectionEndpointAuthMeths: []string{"client_secret_basic", "bearer"},
	})
	if err != nil { // cannot happen: only strings
		panic("accesstoken: encoding metadata: " + err.Error())
	}
	return b
}
