package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the Latchkey API.
	GroupVersion = schema.GroupVersion{Group: "latchkey.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Latchkey types with a runtime.Scheme. It
	// is apimachinery's, so importing this package pulls in no
	// controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the Latchkey types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &ApiClient{}, &ApiClientList{}, &CredentialGrant{}, &CredentialGrantList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
